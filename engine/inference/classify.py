"""Class probabilities -> classes and confidence (pure numpy), at full resolution or from coarse ones.

A coarse (25, h/s, w/s) probability map stands for its bilinear upsampling by ``s`` (half-pixel centres, as
``torch.nn.functional.interpolate(..., align_corners=False)``, edges clamped). ``bilinear_argmax`` gives the
argmax of that upsampling without computing it everywhere: where the four coarse neighbours of a cell share
their class, every pixel between them has it too (each upsampled value is a convex combination of the four,
so the class that wins at all four wins in between, and the first maximum stays the first); only cells at a
class boundary are interpolated, sixteen pixels at a time.
"""

from __future__ import annotations

import math

import numpy as np

from ..classes import NUM_OUTPUTS

LOG2_CLASSES = math.log2(NUM_OUTPUTS)
CELL_CHUNK = 8192  # boundary cells interpolated at once (s*s*25 float32 each: 1.6 MB per 1000 at s=4)


def argmax_classes(scores: np.ndarray) -> np.ndarray:
    """uint8 argmax over channels 1..24 of (25, h, w) scores, the first maximum on ties (as np.argmax).

    A loop over channels on contiguous planes: faster than np.argmax over axis 0, which walks the channels
    with a stride of h*w (bench/README.md).
    """
    best = scores[1].copy()
    classes = np.ones(best.shape, dtype=np.uint8)
    higher = np.empty(best.shape, dtype=bool)
    for c in range(2, scores.shape[0]):
        np.greater(scores[c], best, out=higher)
        np.copyto(classes, np.uint8(c), where=higher)
        np.maximum(best, scores[c], out=best)
    return classes


def confidence(probs: np.ndarray) -> np.ndarray:
    """1 - normalised entropy of (25, h, w) probabilities summing to one over the first axis, float32."""
    p = np.clip(probs, 1e-12, 1.0)
    entropy = -(probs * np.log2(p)).sum(axis=0) / LOG2_CLASSES
    return np.clip(1.0 - entropy, 0.0, 1.0).astype(np.float32)


def classes_and_confidence(probs: np.ndarray, want_confidence: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Class = argmax over channels 1..24 (0 is never predicted); confidence = 1 - normalised entropy.

    ``probs`` is (25, h, w) and sums to one over the first axis.
    """
    classes = argmax_classes(probs)
    return classes, (confidence(probs) if want_confidence else None)


def _fractions(scale: int) -> np.ndarray:
    """Where the ``scale`` pixels of a cell lie between its two coarse neighbours (half-pixel centres)."""
    return ((np.arange(scale) + 0.5) / scale).astype(np.float32)


def bilinear_argmax(corners: np.ndarray, scale: int, t0y: int, t0x: int, h: int, w: int) -> np.ndarray:
    """uint8 classes (h, w) of the bilinear upsampling of ``corners`` (25, ny+1, nx+1).

    Cell (i, j) lies between corners [i, i+1] x [j, j+1] and holds scale x scale pixels; output pixel (y, x)
    is pixel ((y + t0y) % scale, (x + t0x) % scale) of cell ((y + t0y) // scale, (x + t0x) // scale).
    The interpolation is computed for the boundary cells only (``_interpolated_classes``).
    """
    s = scale
    k = argmax_classes(corners)
    k00 = k[:-1, :-1]
    boundary = (k00 != k[1:, :-1]) | (k00 != k[:-1, 1:]) | (k00 != k[1:, 1:])
    ny, nx = k00.shape
    out = np.repeat(np.repeat(k00, s, axis=0), s, axis=1)
    ci, cj = np.nonzero(boundary)
    if ci.size:
        last = np.moveaxis(corners, 0, -1)  # (ny+1, nx+1, 25) view: one cell's classes are contiguous rows
        cells = out.reshape(ny, s, nx, s)
        for a in range(0, ci.size, CELL_CHUNK):
            i, j = ci[a : a + CELL_CHUNK], cj[a : a + CELL_CHUNK]
            cells[i, :, j, :] = _interpolated_classes(
                [last[i, j], last[i, j + 1], last[i + 1, j], last[i + 1, j + 1]], s)
    return out[t0y : t0y + h, t0x : t0x + w]


def _interpolated_classes(corner_values: list[np.ndarray], s: int) -> np.ndarray:
    """uint8 (n, s, s) classes of the s x s pixels of n cells from their corners' (n, 25) probabilities
    (top-left, top-right, bottom-left, bottom-right), interpolated in torch's order (along x, then y).

    Only the classes that can win are interpolated: a class whose highest corner value is below another
    class's lowest corner value loses at every pixel of the cell (the values in between are convex
    combinations). Cells are taken in groups with the same number of candidates (mostly 2-4 of 24), each
    cell's candidates in class order, so the first maximum on ties is still the lowest class."""
    c00, c01, c10, c11 = (v[:, 1:] for v in corner_values)  # class 0 is never predicted
    high = np.maximum(np.maximum(c00, c01), np.maximum(c10, c11))
    low = np.minimum(np.minimum(c00, c01), np.minimum(c10, c11))
    needed = high >= low.max(axis=1, keepdims=True)
    counts = needed.sum(axis=1)
    f = _fractions(s)
    g = (1.0 - f).astype(np.float32)
    out = np.empty((len(counts), s, s), dtype=np.uint8)
    for k in np.unique(counts):
        rows = np.nonzero(counts == k)[0]
        keep = np.nonzero(needed[rows])[1].reshape(len(rows), k)  # ascending class indices per cell
        v00, v01, v10, v11 = (np.take_along_axis(v[rows], keep, axis=1).T.copy()
                              for v in (c00, c01, c10, c11))
        best_value = best = None
        for c in range(k):  # a running maximum over the candidates, the first one kept on ties
            top = v00[c][:, None] * g + v01[c][:, None] * f  # (n, s along x)
            bottom = v10[c][:, None] * g + v11[c][:, None] * f
            value = top[:, None, :] * g[None, :, None] + bottom[:, None, :] * f[None, :, None]  # (n, s, s)
            if best is None:
                best_value, best = value, np.zeros(value.shape, dtype=np.uint8)
            else:
                higher = value > best_value
                np.copyto(best, np.uint8(c), where=higher)
                np.maximum(best_value, value, out=best_value)
        classes = np.take_along_axis(keep, best.reshape(len(rows), s * s).astype(np.intp), axis=1)
        out[rows] = (classes + 1).reshape(len(rows), s, s)
    return out


def bilinear_plane(corners: np.ndarray, scale: int, t0y: int, t0x: int, h: int, w: int) -> np.ndarray:
    """float32 (h, w) bilinear upsampling of one plane ``corners`` (ny+1, nx+1), as in bilinear_argmax."""
    f = _fractions(scale)
    ys, xs = np.arange(h) + t0y, np.arange(w) + t0x
    fy, fx = f[ys % scale][:, None], f[xs % scale][None, :]
    iy, ix = ys // scale, xs // scale
    rows = corners[iy] * (1.0 - fy) + corners[iy + 1] * fy  # (h, nx+1)
    return (rows[:, ix] * (1.0 - fx) + rows[:, ix + 1] * fx).astype(np.float32)


class CoarseRows:
    """Finished rows of a coarse probability map in, finished full-resolution class (and confidence) rows out.

    One column strip of the map: full-resolution columns [x_a, x_b); the coarse rows pushed must cover the
    coarse columns [c_a, c_b) that the strip's interpolation reads (one beyond each side where the map has
    it).
    ``height``/``coarse_height``/``coarse_width`` are the whole map's, for clamping at its edges.
    """

    def __init__(self, scale: int, height: int, coarse_height: int, coarse_width: int, x_a: int, x_b: int,
                 c_a: int, want_confidence: bool, chunk: int = 64) -> None:
        if scale % 2:
            raise ValueError("the coarse scale must be even")
        self.s, self.o = scale, scale // 2  # full-resolution pixel y lies in cell (y + o) // s
        self.height, self.hc, self.wc = height, coarse_height, coarse_width
        self.x_a, self.x_b, self.c_a = x_a, x_b, c_a
        self.want_confidence, self.chunk = want_confidence, chunk
        self.buf: np.ndarray | None = None  # (25, n, columns) coarse rows [self.r0, self.r0 + n)
        self.r0 = 0
        self.done = 0  # full-resolution rows handed out

    def push(self, r: int, rows: np.ndarray):
        """Add coarse rows [r, r + n) (normalised probabilities (25, n, c_b - c_a)); yields
        (y, classes (h, w), confidence or None) for every full-resolution row band now final."""
        if self.buf is None or self.buf.shape[1] == 0:
            self.buf, self.r0 = rows, r
        else:
            if r != self.r0 + self.buf.shape[1]:
                raise ValueError("coarse rows must be pushed in order")
            self.buf = np.concatenate([self.buf, rows], axis=1)
        have = self.r0 + self.buf.shape[1]
        end = self.height if have >= self.hc else min(self.height, self.s * have - self.o)
        for y in range(self.done, end, self.chunk):
            yield self._band(y, min(end, y + self.chunk))
        self.done = max(self.done, end)
        keep = max(0, (self.done + self.o) // self.s - 1) - self.r0  # the first coarse row still needed
        if keep > 0:
            self.buf = self.buf[:, keep:]
            self.r0 += keep

    def _band(self, ya: int, yb: int):
        s, o = self.s, self.o
        qa, qb = (ya + o) // s, (yb - 1 + o) // s
        qxa, qxb = (self.x_a + o) // s, (self.x_b - 1 + o) // s
        rows = np.clip(np.arange(qa - 1, qb + 1), 0, self.hc - 1) - self.r0
        cols = np.clip(np.arange(qxa - 1, qxb + 1), 0, self.wc - 1) - self.c_a
        corners = np.take(np.take(self.buf, rows, axis=1), cols, axis=2)
        t0y, t0x = (ya + o) % s, (self.x_a + o) % s
        h, w = yb - ya, self.x_b - self.x_a
        classes = bilinear_argmax(corners, s, t0y, t0x, h, w)
        conf = bilinear_plane(confidence(corners), s, t0y, t0x, h, w) if self.want_confidence else None
        return ya, classes, conf
