"""Progress and cancellation plumbing shared by every long-running engine function."""

from __future__ import annotations

import re
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


_ESTIMATE_RE = re.compile(r" \(about [^)]* left\)$")


def stage_text(message: str) -> str:
    """A progress message without the stage's own estimate (``Progress`` appends "(about … left)")."""
    return _ESTIMATE_RE.sub("", message)


class RunEstimate:
    """One estimate of the time left for a whole run, from the measured rate of its current stage.

    A run's stages advance its 0..1 fraction at different speeds (adaptation is slower per percent than
    mapping), so the estimate extrapolates the current stage's measured rate (fraction per second since the
    stage began) over what is left of the run, never the run's average. A stage whose fraction has not moved
    for ``stalled_after`` seconds (a one-time model export) — or for three of its own usual intervals between
    moves, when its steps are slower than that (adaptation iterations on a loaded CPU) — has no known length,
    and the estimate says so instead of freezing.
    """

    def __init__(self, stalled_after: float = 3.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._stalled_after = stalled_after
        self._t0 = clock()
        self._stage = ""
        self._stage_t = self._t0
        self._stage_f = 0.0
        self._last_f = 0.0
        self._moved_t = self._t0
        self._moves = 0  # how often the fraction moved in this stage

    def update(self, fraction: float, message: str | None = None) -> str:
        """Record ``fraction`` (0..1) of the run and the stage's ``message``; the estimate in words."""
        now = self._clock()
        if message is not None:
            key = re.sub(r"\d+", "#", stage_text(message).split(":")[0])
            if key != self._stage:
                self._stage, self._stage_t, self._stage_f, self._moved_t = key, now, fraction, now
                self._moves = 0
        if fraction > self._last_f:
            self._moved_t = now
            self._moves += 1
        self._last_f = max(self._last_f, fraction)
        return self.text(now)

    def text(self, now: float | None = None) -> str:
        """"12 s elapsed, about 1 min 05 s left", or why no estimate can be given yet."""
        now = self._clock() if now is None else now
        elapsed = f"{format_seconds(now - self._t0)} elapsed"
        if self._last_f >= 1.0:
            return elapsed
        usual = (self._moved_t - self._stage_t) / self._moves if self._moves else 0.0
        if now - self._moved_t >= max(self._stalled_after, 3.0 * usual):
            return f"{elapsed}; this step's length is not known (it reports no progress), so no estimate yet"
        done, spent = self._last_f - self._stage_f, now - self._stage_t
        # a normal run moves 0.5 % within a second; a huge one (a 40 000 Mpx VRT) may take minutes per 0.5 %,
        # so after 5 s of a stage any measured movement is extrapolated
        if done <= 0 or spent < 1.0 or (done <= 0.005 and spent < 5.0):
            return elapsed
        return f"{elapsed}, about {format_seconds((1.0 - self._last_f) * spent / done)} left"
