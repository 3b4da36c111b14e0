"""What every fbplandcover algorithm shares: group, icon, help, progress bridging, error translation."""

from __future__ import annotations

import time
from pathlib import Path

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProviderRegistry,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

ICON = Path(__file__).resolve().parents[1] / "resources" / "icon.png"


def tr(text: str) -> str:
    return QCoreApplication.translate("fbplandcover", text)


def layer_path(layer) -> str:
    """The file behind a GDAL raster layer (without GDAL open options)."""
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    return parts.get("path") or layer.source()


class FeedbackBridge:
    """The engine's progress(fraction, message) and is_cancelled() on top of a Processing feedback."""

    def __init__(self, feedback: QgsProcessingFeedback | None) -> None:
        self.feedback = feedback
        self._last_text = ""
        self._last_time = 0.0

    def progress(self, fraction: float, message: str) -> None:
        if self.feedback is None:
            return
        self.feedback.setProgress(max(0.0, min(100.0, 100.0 * fraction)))
        stage = message.split(" (about ")[0]
        now = time.monotonic()
        # a new stage at once; the same stage with a new estimate at most once a second (the log keeps it)
        if message != self._last_text and (stage != self._last_text.split(" (about ")[0]
                                            or now - self._last_time >= 1.0):
            self.feedback.setProgressText(message)
            self._last_text, self._last_time = message, now

    def is_cancelled(self) -> bool:
        return bool(self.feedback is not None and self.feedback.isCanceled())


class FbpAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses set NAME, DISPLAY, HELP and NEEDS_ENGINE."""

    NAME = ""
    DISPLAY = ""
    HELP = ""
    GROUP = ("maps", "Land cover")
    NEEDS_ENGINE = False  # torch + smp must load

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:  # noqa: N802
        return tr(self.DISPLAY)

    def group(self) -> str:
        return tr(self.GROUP[1])

    def groupId(self) -> str:  # noqa: N802
        return self.GROUP[0]

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(self.HELP)

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def createInstance(self):  # noqa: N802
        return type(self)()

    def canExecute(self):  # noqa: N802
        if self.NEEDS_ENGINE:
            from .engine_check import engine_problem

            problem = engine_problem()
            if problem:
                return False, problem
        return True, ""

    def run_engine(self, fn, *args, **kwargs):
        """Call an engine function; FbpError (Cancelled included) becomes a QgsProcessingException."""
        from ..engine.errors import FbpError

        try:
            return fn(*args, **kwargs)
        except FbpError as exc:
            raise QgsProcessingException(str(exc)) from None

    def require_engine(self) -> None:
        ok, problem = self.canExecute()
        if not ok:
            raise QgsProcessingException(problem)

    @staticmethod
    def context_or_new(context: QgsProcessingContext | None) -> QgsProcessingContext:
        return context if context is not None else QgsProcessingContext()
