"""The window grid and the blending weights (pure numpy).

Windows of ``window`` pixels overlap by ``overlap`` pixels along each axis; the last window is moved
back to end exactly at the raster's edge, so every window lies inside the raster (a raster smaller
than one window gets one window, padded by the reader). Each window's weight is separable,
``w(x, y) = wx(x) * wy(y)``, rising smoothly (sin²) over the overlap on sides shared with a
neighbour and flat on sides at the raster's edge. Because the grid is a Cartesian product, the total
weight at a pixel is ``Sx(x) * Sy(y)`` with one-dimensional sums, so normalising costs two small
vectors instead of a full-size weight image.
"""

from __future__ import annotations

import numpy as np


def axis_starts(length: int, window: int, overlap: int) -> list[int]:
    """Start offsets of the windows along an axis of ``length`` pixels."""
    if length <= 0 or window <= 0:
        raise ValueError("length and window must be positive")
    if not 0 <= overlap < window:
        raise ValueError("overlap must be in [0, window)")
    if length <= window:
        return [0]
    stride = window - overlap
    starts = list(range(0, length - window, stride))
    starts.append(length - window)
    return starts


def axis_weights(window: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """Weights (float64, all > 0) of one window along one axis."""
    w = np.ones(window, dtype=np.float64)
    if overlap > 0:
        # Half-pixel offsets keep every weight strictly positive.
        ramp = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap) ** 2
        if not at_start:
            w[:overlap] = np.minimum(w[:overlap], ramp)
        if not at_end:
            w[-overlap:] = np.minimum(w[-overlap:], ramp[::-1])
    return w


def axis_weight_sum(length: int, window: int, overlap: int) -> np.ndarray:
    """Sum over all windows of their axis weights at each pixel of the axis (clipped to ``length``)."""
    starts = axis_starts(length, window, overlap)
    total = np.zeros(max(length, window), dtype=np.float64)
    for k, s in enumerate(starts):
        total[s : s + window] += axis_weights(window, overlap, k == 0, k == len(starts) - 1)
    return total[:length]


def windows_needed(length: int, window: int, overlap: int) -> int:
    return len(axis_starts(length, window, overlap))


def choose_window(length: int, overlap: int, multiple: int, low: int = 384, high: int = 1024) -> int:
    """The window size along one axis that computes the fewest pixels for ``length``.

    Candidates are multiples of ``multiple`` between ``low`` and ``high``; an axis shorter than ``low``
    gets one window just covering it. The computed length ``windows × window`` is minimised (the grid is
    separable, so minimising each axis minimises the area); ties go to the larger window (fewer calls).
    """
    covering = -(-max(length, overlap + 1) // multiple) * multiple
    if covering <= low:
        return covering
    best = None
    for w in range(-(-low // multiple) * multiple, high + 1, multiple):
        if w <= overlap:
            continue
        cost = windows_needed(length, w, overlap) * w
        if best is None or cost < best[0] or (cost == best[0] and w > best[1]):
            best = (cost, w)
    return best[1] if best else covering
