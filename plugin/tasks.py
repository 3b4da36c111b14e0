"""Running one of our Processing algorithms as a QGIS task, for the panels and dialogs.

The dock and the dialogs run exactly the algorithms the toolbox and ``qgis_process`` run. Nothing here
touches widgets from the worker thread: the feedback's signals are queued to the main thread, and the task's
``executed`` signal is emitted there.
"""

from __future__ import annotations

from qgis.core import (
    QgsApplication,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProject,
)
from qgis.PyQt.QtCore import QObject, pyqtSignal


class TaskFeedback(QgsProcessingFeedback):
    """Processing feedback that also signals stage texts and errors (emitted on the worker thread)."""

    stage = pyqtSignal(str)
    error = pyqtSignal(str)

    def setProgressText(self, text: str) -> None:  # noqa: N802
        super().setProgressText(text)
        self.stage.emit(text)

    def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802, N803
        super().reportError(error, fatalError)
        self.error.emit(error)


class AlgorithmRun(QObject):
    """One run of ``algorithm_id`` with ``parameters``; ``finished(ok, results)`` on the main thread."""

    progress = pyqtSignal(float)  # 0..100
    text = pyqtSignal(str)
    finished = pyqtSignal(bool, dict)

    def __init__(self, algorithm_id: str, parameters: dict, parent=None) -> None:
        super().__init__(parent)
        self.algorithm_id = algorithm_id
        self.parameters = parameters
        self.task = None
        self.context = None
        self.feedback = None
        self.errors: list[str] = []

    @property
    def running(self) -> bool:
        return self.task is not None

    @property
    def cancelled(self) -> bool:
        return self.feedback is not None and self.feedback.isCanceled()

    def start(self) -> str | None:
        """Start the task; returns None, or the sentence saying why it cannot start."""
        alg = QgsApplication.processingRegistry().createAlgorithmById(self.algorithm_id)
        if alg is None:
            return (f"The Processing algorithm {self.algorithm_id} is not loaded; re-enable the FBP Land "
                    "Cover plugin.")
        self.context = QgsProcessingContext()
        self.context.setProject(QgsProject.instance())
        self.feedback = TaskFeedback()
        self.feedback.progressChanged.connect(self.progress)
        self.feedback.stage.connect(self.text)
        self.feedback.error.connect(self.errors.append)
        self.task = QgsProcessingAlgRunnerTask(alg, self.parameters, self.context, self.feedback)
        self.task.executed.connect(self._executed)
        QgsApplication.taskManager().addTask(self.task)
        return None

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def disconnect_task(self) -> None:
        """Stop listening (the owner is going away) and cancel."""
        if self.task is not None:
            try:
                self.task.executed.disconnect(self._executed)
            except (TypeError, RuntimeError):
                pass
            self.task.cancel()
            self.task = None

    def _executed(self, successful: bool, results: dict) -> None:
        self.task = None
        self.finished.emit(bool(successful), dict(results or {}))

    def error_text(self, fallback: str) -> str:
        return self.errors[-1] if self.errors else fallback
