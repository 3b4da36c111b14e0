"""Progress and cancellation plumbing shared by every long-running engine function."""

from __future__ import annotations

import time
from collections.abc import Callable

from .errors import CancelledError

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]


def _noop(_fraction: float, _message: str) -> None:
    pass


def _never() -> bool:
    return False


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class Progress:
    """Reports a stage's fraction with an estimate of the time left, and checks for cancellation.

    ``span`` maps this stage onto a part of the caller's 0..1 range, so a pipeline of stages reports
    one monotonic fraction.
    """

    def __init__(self, progress: ProgressFn | None = None, is_cancelled: CancelFn | None = None,
                 span: tuple[float, float] = (0.0, 1.0)) -> None:
        self._progress = progress or _noop
        self._is_cancelled = is_cancelled or _never
        self.span = span
        self._t0 = time.monotonic()

    def stage(self, start: float, end: float) -> Progress:
        """A sub-progress covering [start, end] of this one's range."""
        a, b = self.span
        return Progress(self._progress, self._is_cancelled, (a + (b - a) * start, a + (b - a) * end))

    def __call__(self, fraction: float, message: str) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        elapsed = time.monotonic() - self._t0
        if 0.02 < fraction < 1.0 and elapsed > 2.0:
            message = f"{message} (about {format_seconds(elapsed * (1 - fraction) / fraction)} left)"
        a, b = self.span
        self._progress(a + (b - a) * fraction, message)
        self.check()

    def check(self) -> None:
        """Raise CancelledError if the user asked to stop."""
        if self._is_cancelled():
            raise CancelledError()

    @property
    def cancelled(self) -> bool:
        return bool(self._is_cancelled())
