"""Streaming prediction: windows of the raster -> model -> blended class and confidence rows.

Memory does not grow with the raster: the raster is processed in column panels no wider than a
memory budget allows, and within a panel one band of ``window`` rows of blended class
probabilities is kept in a ring buffer; rows are written out as soon as no later window touches them.

Two stitching modes:
- ``blend`` (default): overlapping windows, probabilities weighted by smooth separable ramps
  (engine.tiling) and normalised, so there are no seams and no edge artefacts.
- ``centre-crop``: the authors' reference scheme, reproduced pixel for pixel: the 0..1 image is
  zero-padded by 128 pixels on the top and left (before normalisation), 512 windows at stride 256,
  only the central 256x256 of each window kept, argmax over channels 1..24.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .classes import NUM_OUTPUTS
from .normalize import Stats
from .progress import Progress
from .tiling import axis_starts, axis_weight_sum, axis_weights

LOG2_CLASSES = math.log2(NUM_OUTPUTS)

# Writer callback: (x, y, classes uint8 (h, w), confidence float32 (h, w) or None).
BlockSink = Callable[[int, int, np.ndarray, "np.ndarray | None"], None]


@dataclass(frozen=True)
class PredictSettings:
    window: int = 512  # columns (and rows, unless window_y is given)
    overlap: int = 64
    window_y: int | None = None
    batch_size: int = 4
    stitch: str = "blend"  # "blend" | "centre-crop"
    memory_budget_mb: int = 640  # for the blending accumulator
    confidence: bool = False

    @property
    def rows(self) -> int:
        return self.window_y or self.window

    def panel_width(self, width: int) -> int:
        """Output columns per panel so that the accumulator fits the memory budget."""
        per_column = NUM_OUTPUTS * 4 * self.rows
        span = max(self.window * 2, self.memory_budget_mb * 2**20 // per_column)
        return max(self.window, min(width, span - self.window))


def classes_and_confidence(probs: np.ndarray, want_confidence: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Class = argmax over channels 1..24 (0 is never predicted); confidence = 1 - normalised entropy.

    ``probs`` is (25, h, w) and sums to one over the first axis.
    """
    classes = (np.argmax(probs[1:], axis=0) + 1).astype(np.uint8)
    if not want_confidence:
        return classes, None
    p = np.clip(probs, 1e-12, 1.0)
    entropy = -(probs * np.log2(p)).sum(axis=0) / LOG2_CLASSES
    return classes, np.clip(1.0 - entropy, 0.0, 1.0).astype(np.float32)


def predict(inp, backend, stats: Stats, settings: PredictSettings, sink: BlockSink,
            progress: Progress | None = None) -> None:
    """Map ``inp`` (a ModelInput) with ``backend`` and hand finished blocks to ``sink``."""
    progress = progress or Progress()
    if settings.stitch == "blend":
        _predict_blend(inp, backend, stats, settings, sink, progress)
    elif settings.stitch == "centre-crop":
        _predict_centre_crop(inp, backend, stats, settings, sink, progress)
    else:
        raise ValueError(f"unknown stitch mode {settings.stitch!r}")


def _normaliser(stats: Stats):
    mean = np.asarray(stats.mean, dtype=np.float32)[:, None, None]
    inv_std = (1.0 / np.asarray(stats.std, dtype=np.float32))[:, None, None]

    def normalise(x: np.ndarray) -> np.ndarray:
        return (x - mean) * inv_std

    return normalise


def _run_batches(windows, read, backend, batch_size: int, progress: Progress, counter: list[int], total: int):
    """Yield (window, probs) for each window, running the backend a batch at a time."""
    for i in range(0, len(windows), batch_size):
        chunk = windows[i : i + batch_size]
        batch = np.stack([read(wnd) for wnd in chunk])
        progress.check()
        probs = backend(batch)
        yield from zip(chunk, probs, strict=True)
        counter[0] += len(chunk)
        progress(counter[0] / total, f"Mapping: window {counter[0]} of {total}")


def _predict_blend(inp, backend, stats, settings, sink, progress) -> None:
    W, H, win, winy, ov = inp.width, inp.height, settings.window, settings.rows, settings.overlap
    normalise = _normaliser(stats)
    xs_all, ys = axis_starts(W, win, ov), axis_starts(H, winy, ov)
    sx, sy = axis_weight_sum(W, win, ov), axis_weight_sum(H, winy, ov)
    wy = [axis_weights(winy, ov, k == 0, k == len(ys) - 1) for k in range(len(ys))]
    panel = settings.panel_width(W)
    panels = [(p, min(W, p + panel)) for p in range(0, W, panel)]
    plan = []
    for px0, px1 in panels:
        cols = [k for k, s in enumerate(xs_all) if s < px1 and s + win > px0]
        plan.append((px0, px1, cols))
    total = sum(len(cols) for _, _, cols in plan) * len(ys)
    counter = [0]

    def read(wnd):
        x, y = wnd[1], wnd[2]
        data, valid = inp.read(x, y, win, winy)
        data = normalise(data)
        data[:, ~valid] = 0.0  # nodata and outside: the scene's mean, so it does not sway its neighbours
        return data

    for px0, px1, cols in plan:
        span0 = xs_all[cols[0]]
        span = xs_all[cols[-1]] + win - span0
        acc = np.zeros((NUM_OUTPUTS, winy, span), dtype=np.float32)  # ring buffer over rows
        wx = {k: axis_weights(win, ov, k == 0, k == len(xs_all) - 1) for k in cols}
        weights: dict[tuple, np.ndarray] = {}  # a window's 2-D weight depends only on which edges it touches
        done_to = 0  # output rows below this are written
        for r, y0 in enumerate(ys):
            windows = [(k, xs_all[k], y0) for k in cols]
            for (k, x0, _), probs in _run_batches(windows, read, backend, settings.batch_size,
                                                  progress, counter, total):
                edges = (r == 0, r == len(ys) - 1, k == 0, k == len(xs_all) - 1)
                weight = weights.get(edges)
                if weight is None:
                    weight = weights[edges] = (wy[r][:, None] * wx[k][None, :]).astype(np.float32)
                for ring0, src0, n in _ring_slices(y0, winy, winy):
                    c0 = x0 - span0
                    acc[:, ring0 : ring0 + n, c0 : c0 + win] += probs[:, src0 : src0 + n] * weight[src0 : src0 + n]
            # rows [done_to, next start) are final
            end = ys[r + 1] if r + 1 < len(ys) else H
            if end > done_to:
                _flush(acc, inp, done_to, end, winy, px0, px1, span0, sx, sy, settings, sink)
                done_to = end
        progress.check()


def _flush(acc, inp, y_a, y_b, win, px0, px1, span0, sx, sy, settings, sink, chunk: int = 64) -> None:
    """Normalise, classify and hand over rows [y_a, y_b) of panel columns [px0, px1), then clear them.

    Rows go out in chunks of at most ``chunk`` rows so the temporaries stay small on wide panels."""
    pieces = [(r0 + k, s0 + k, min(chunk, n - k))
              for r0, s0, n in _ring_slices(y_a, y_b - y_a, win) for k in range(0, n, chunk)]
    for ring0, src0, n in pieces:
        y = y_a + src0
        block = acc[:, ring0 : ring0 + n, px0 - span0 : px1 - span0]
        norm = (sy[y : y + n, None] * sx[None, px0:px1]).astype(np.float32)
        probs = block / norm
        classes, conf = classes_and_confidence(probs, settings.confidence)
        _, valid = inp.read(px0, y, px1 - px0, n)
        classes[~valid] = 0
        if conf is not None:
            conf[~valid] = -1.0
        sink(px0, y, classes, conf)
        acc[:, ring0 : ring0 + n] = 0.0


def _ring_slices(y0: int, n: int, size: int) -> list[tuple[int, int, int]]:
    """Pieces (ring_row, source_row, length) of rows [y0, y0+n) in a ring buffer of ``size`` rows."""
    out, src = [], 0
    while src < n:
        ring = (y0 + src) % size
        length = min(n - src, size - ring)
        out.append((ring, src, length))
        src += length
    return out


def _predict_centre_crop(inp, backend, stats, settings, sink, progress) -> None:
    """The reference scheme: 512 windows, stride 256, central 256x256 kept, zero padding before normalising."""
    keep, win, pad = 256, 512, 128
    W, H = inp.width, inp.height
    normalise = _normaliser(stats)
    nx, ny = -(-W // keep), -(-H // keep)
    total, counter = nx * ny, [0]

    def read(wnd):
        data, _ = inp.read(wnd[1], wnd[2], win, win)  # zeros outside the raster, as the reference pads
        return normalise(data)

    for i in range(ny):
        y = i * keep
        h = min(keep, H - y)
        windows = [(j, j * keep - pad, y - pad) for j in range(nx)]
        row_classes = np.zeros((h, W), dtype=np.uint8)
        row_conf = np.zeros((h, W), dtype=np.float32) if settings.confidence else None
        for (j, _, _), probs in _run_batches(windows, read, backend, settings.batch_size,
                                             progress, counter, total):
            x = j * keep
            w = min(keep, W - x)
            centre = probs[:, pad : pad + h, pad : pad + w]
            classes, conf = classes_and_confidence(centre, settings.confidence)
            row_classes[:, x : x + w] = classes
            if row_conf is not None:
                row_conf[:, x : x + w] = conf
        _, valid = inp.read(0, y, W, h)
        row_classes[~valid] = 0
        if row_conf is not None:
            row_conf[~valid] = -1.0
        sink(0, y, row_classes, row_conf)
