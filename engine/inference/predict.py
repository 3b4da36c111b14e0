"""Streaming prediction: windows of the raster -> model -> blended class and confidence rows.

Memory does not grow with the raster: the raster is processed in column panels no wider than a
memory budget allows, and within a panel one band of window rows of blended class probabilities is
kept in a ring buffer; rows are handed to the writer as soon as no later window touches them.
A reader thread reads and prepares the next batch of windows while the model runs on the current one.

Two stitching modes:
- ``blend`` (default): overlapping windows, probabilities weighted by smooth separable ramps
  (inference.tiling) and normalised, so there are no seams and no edge artefacts.
  A model whose head scores at 1/4 resolution and upsamples (backend.scale 4, the smp FPN) is blended at
  that resolution on the CPU: the window grid of a (width/4, height/4) map, a 1/16 accumulator (a whole
  scene is one panel), and finished rows upsampled once, only where classes change (inference.classify),
  in a finisher thread while the model runs. The classes are exactly those of the bilinear (half-pixel)
  upsampling of the blend.
- ``centre-crop``: the authors' reference scheme, reproduced pixel for pixel: the 0..1 image is
  zero-padded by 128 pixels on the top and left (before normalisation), 512 windows at stride 256,
  only the central 256x256 of each window kept, argmax over channels 1..24.

On a GPU (a backend with ``device_blend``), normalisation, the model, the blending and the
class/confidence computation all stay on the device; only the raw window values go up and uint8
classes (and float confidences) come back — no per-window host round trip of 25 probability maps.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np

from ..classes import NUM_OUTPUTS
from ..io.normalize import Stats, normalize
from ..progress import Progress
from .classify import LOG2_CLASSES, CoarseRows, classes_and_confidence
from .tiling import axis_starts, axis_weight_sum, axis_weights

STITCH_MODES = ("blend", "centre-crop")
FINISHER_BYTES = 64 * 2**20  # coarse rows waiting for the finisher thread (inference.classify)

# Writer callback: (x, y, classes uint8 (h, w), confidence float32 (h, w) or None).
BlockSink = Callable[[int, int, np.ndarray, "np.ndarray | None"], None]


@dataclass(frozen=True)
class PredictSettings:
    window: int = 512  # columns (and rows, unless window_y is given)
    overlap: int = 64
    window_y: int | None = None
    batch_size: int = 4
    stitch: str = "blend"  # "blend" | "centre-crop"
    memory_budget_mb: int = 384  # for the blending accumulator (wider rasters are split into panels)
    confidence: bool = False
    # Blend a model's coarse probabilities (backend.scale > 1: the FPN's 1/4) and upsample once, instead of
    # upsampling every window (inference.classify); needs window and overlap to be multiples of the scale.
    coarse: bool = True

    @property
    def rows(self) -> int:
        return self.window_y or self.window

    def panel_width(self, width: int) -> int:
        """Output columns per panel so that the accumulator fits the memory budget."""
        per_column = NUM_OUTPUTS * 4 * self.rows
        span = max(self.window * 2, self.memory_budget_mb * 2**20 // per_column)
        return max(self.window, min(width, span - self.window))


class _HostOps:
    """Blending with numpy on the host; the backend takes and returns numpy arrays (``coarse``: the backend's
    coarse probabilities)."""

    def __init__(self, backend, stats: Stats, coarse: bool = False) -> None:
        self.backend = backend
        self.stats = stats
        self.coarse = coarse

    def prepare(self, data: np.ndarray, valid: np.ndarray, fill_invalid: bool) -> np.ndarray:
        # nodata and outside become the scene's mean, so they do not sway their neighbours (not in
        # centre-crop:
        # the reference normalised its zero padding)
        return normalize(data, self.stats.mean, self.stats.std, valid if fill_invalid else None)

    def run(self, batch: list[np.ndarray]):
        return (self.backend.coarse if self.coarse else self.backend)(np.stack(batch))

    def zeros(self, shape):
        return np.zeros(shape, dtype=np.float32)

    def weight(self, w: np.ndarray):
        return w.astype(np.float32)

    def apply_weight(self, probs: np.ndarray, weight: np.ndarray, margins: tuple[int, int, int, int]) -> None:
        """probs *= weight in place, only on the margins (top, bottom, left, right widths): the weight is
        exactly 1 inside them, and skipping that multiply saves a third of the blending's memory traffic."""
        top, bottom, left, right = margins
        h, w = weight.shape
        top, left = min(top, h), min(left, w)
        bottom, right = min(bottom, h - top), min(right, w - left)  # margins of small windows meet
        for rows, cols in (((0, top), (0, w)), ((h - bottom, h), (0, w)),
                           ((top, h - bottom), (0, left)), ((top, h - bottom), (w - right, w))):
            if rows[1] > rows[0] and cols[1] > cols[0]:
                block = (slice(None), slice(*rows), slice(*cols))
                probs[block] *= weight[block[1:]]

    def classify(self, probs, want_conf: bool):
        return classes_and_confidence(probs, want_conf)


class _DeviceOps:
    """Blending with torch on the backend's device (a GPU): only uint8 classes come back per block."""

    def __init__(self, backend, stats: Stats) -> None:
        from ..torch_import import import_torch

        self.torch = torch = import_torch()
        self.backend = backend
        self.device = torch.device(backend.device)
        self.mean = torch.tensor(stats.mean, dtype=torch.float32, device=self.device)[:, None, None]
        self.inv_std = 1.0 / torch.tensor(stats.std, dtype=torch.float32, device=self.device)[:, None, None]
        self.pin = self.device.type == "cuda"

    def prepare(self, data: np.ndarray, valid: np.ndarray, fill_invalid: bool):
        return (data, valid, fill_invalid)  # normalised on the device, batched, in run()

    def run(self, batch):
        torch = self.torch
        data = torch.from_numpy(np.stack([b[0] for b in batch]))
        valid = torch.from_numpy(np.stack([b[1] for b in batch]))
        if self.pin:
            data, valid = data.pin_memory(), valid.pin_memory()
        x = (data.to(self.device, non_blocking=True) - self.mean) * self.inv_std
        if batch[0][2]:
            x = x * valid.to(self.device, non_blocking=True)[:, None]
        return self.backend.device_probabilities(x)

    def zeros(self, shape):
        return self.torch.zeros(shape, dtype=self.torch.float32, device=self.device)

    def weight(self, w: np.ndarray):
        return self.torch.from_numpy(w.astype(np.float32)).to(self.device)

    def apply_weight(self, probs, weight, margins) -> None:
        probs *= weight  # one fused kernel on the device

    def classify(self, probs, want_conf: bool):
        torch = self.torch
        classes = (torch.argmax(probs[1:], dim=0) + 1).to(torch.uint8).cpu().numpy()
        if not want_conf:
            return classes, None
        p = torch.clamp(probs, 1e-12, 1.0)
        entropy = -(probs * torch.log2(p)).sum(dim=0) / LOG2_CLASSES
        return classes, torch.clamp(1.0 - entropy, 0.0, 1.0).float().cpu().numpy()


def predict(inp, backend, stats: Stats, settings: PredictSettings, sink: BlockSink,
            progress: Progress | None = None) -> None:
    """Map ``inp`` (a ModelInput) with ``backend`` and hand finished blocks to ``sink``."""
    progress = progress or Progress()
    scale = coarse_scale(backend, settings)
    if getattr(backend, "device_blend", False):
        ops = _DeviceOps(backend, stats)
    else:
        ops = _HostOps(backend, stats, coarse=scale > 1)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fbp-reader") as reader:
        if settings.stitch == "blend" and scale > 1:
            _predict_blend_coarse(inp, ops, settings, sink, progress, reader, scale)
        elif settings.stitch == "blend":
            _predict_blend(inp, ops, settings, sink, progress, reader)
        elif settings.stitch == "centre-crop":
            _predict_centre_crop(inp, ops, settings, sink, progress, reader)
        else:
            raise ValueError(f"unknown stitch mode {settings.stitch!r}")


def coarse_scale(backend, settings: PredictSettings) -> int:
    """The scale the blend runs at: the backend's coarse scale when the settings allow it, else 1."""
    scale = getattr(backend, "scale", 1)
    if (scale <= 1 or not settings.coarse or settings.stitch != "blend"
            or getattr(backend, "device_blend", False)
            or any(v % scale for v in (settings.window, settings.rows, settings.overlap))):
        return 1
    return scale


def _run_batches(windows, read, ops, batch_size: int, progress: Progress, counter: list[int], total: int,
                 reader: ThreadPoolExecutor):
    """Yield (window, valid, probs) per window, a batch at a time; the next batch is read meanwhile."""
    chunks = [windows[i : i + batch_size] for i in range(0, len(windows), batch_size)]

    def read_chunk(chunk):
        return [read(w) for w in chunk]

    pending = reader.submit(read_chunk, chunks[0]) if chunks else None
    for i, chunk in enumerate(chunks):
        items = pending.result()
        pending = reader.submit(read_chunk, chunks[i + 1]) if i + 1 < len(chunks) else None
        progress.check()
        probs = ops.run([x for x, _ in items])
        for k, wnd in enumerate(chunk):
            yield wnd, items[k][1], probs[k]
        counter[0] += len(chunk)
        progress(counter[0] / total, f"Mapping: window {counter[0]} of {total}")


def _predict_blend(inp, ops, settings, sink, progress, reader) -> None:
    grid = _BlendGrid(inp.width, inp.height, settings)
    total = sum(len(cols) for _, _, cols in grid.panels) * len(grid.ys)
    counter = [0]

    def read(wnd):
        data, valid = inp.read(wnd[1], wnd[2], grid.win, grid.rows)
        return ops.prepare(data, valid, True), valid

    for px0, px1, cols in grid.panels:
        panel = _Panel(grid, ops, px0, px1, cols)
        done_to = 0  # output rows below this are written
        for r, y0 in enumerate(grid.ys):
            windows = [(k, grid.xs[k], y0) for k in cols]
            for (k, x0, _), valid, probs in _run_batches(windows, read, ops, settings.batch_size,
                                                         progress, counter, total, reader):
                panel.add(r, k, x0, y0, valid, probs)
            end = grid.ys[r + 1] if r + 1 < len(grid.ys) else grid.height  # rows [done_to, end) are final
            if end > done_to:
                panel.flush(done_to, end, sink)
                done_to = end
        panel = None  # its buffers are freed before the next panel allocates its own (no 2x peak)
        progress.check()


def _predict_blend_coarse(inp, ops, settings, sink, progress, reader, scale: int) -> None:
    """The blend at the model's coarse resolution: the window grid of a (width/s, height/s) map, each window's
    coarse probabilities weighted and accumulated there (1/s² of the memory traffic), finished coarse rows
    normalised and upsampled once into classes (inference.classify.CoarseRows) by a finisher thread while the
    model runs on the next windows; the sink stays on this thread. A panel takes the windows of one coarse
    column beyond each of its sides too, so the columns its interpolation reads are complete."""
    s = scale
    wc, hc = -(-inp.width // s), -(-inp.height // s)
    coarse = replace(settings, window=settings.window // s, window_y=settings.rows // s,
                     overlap=settings.overlap // s)
    grid = _BlendGrid(wc, hc, coarse, margin=1)
    total = sum(len(cols) for _, _, cols in grid.panels) * len(grid.ys)
    counter = [0]

    def read(wnd):
        data, valid = inp.read(wnd[1] * s, wnd[2] * s, grid.win * s, grid.rows * s)
        return ops.prepare(data, valid, True), valid

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fbp-finisher") as finisher:
        for px0, px1, cols in grid.panels:
            panel = _Panel(grid, ops, px0, px1, cols, track_valid=False)
            x_a, x_b, c_a, c_b = px0 * s, min(inp.width, px1 * s), max(0, px0 - 1), min(wc, px1 + 1)
            valid = _ValidRing(grid.rows * s + s, x_a, x_b)
            rows_out = CoarseRows(s, inp.height, hc, wc, x_a, x_b, c_a, settings.confidence)
            done_to = emitted = 0
            pending: deque = deque()  # classification jobs, in row order
            for r, y0 in enumerate(grid.ys):
                windows = [(k, grid.xs[k], y0) for k in cols]
                for (k, x0, _), v, probs in _run_batches(windows, read, ops, settings.batch_size, progress,
                                                         counter, total, reader):
                    panel.add(r, k, x0, y0, None, probs)
                    valid.put(x0 * s, y0 * s, v)
                end = grid.ys[r + 1] if r + 1 < len(grid.ys) else grid.height
                for y, ring0, n in panel.take(done_to, end, chunk=32):
                    # the full-resolution rows this push makes final (as CoarseRows decides), their validity
                    to = inp.height if y + n >= hc else min(inp.height, s * (y + n) - s // 2)
                    job = (rows_out, y, panel.normalised(y, ring0, n, c_a, c_b),
                           valid.get(emitted, to - emitted), emitted)
                    pending.append(finisher.submit(_finish_rows, *job))
                    emitted = to
                    # the finisher may lag by a few jobs, at most ~64 MB of them (one on very wide panels)
                    _hand_over(pending, sink, x_a, keep=max(1, min(8, FINISHER_BYTES // job[2].nbytes)))
                done_to = max(done_to, end)
            _hand_over(pending, sink, x_a, keep=0)
            panel = None
            progress.check()


def _finish_rows(rows_out: CoarseRows, y: int, block: np.ndarray, valid: np.ndarray, valid_y: int) -> list:
    """Upsample and classify coarse rows (in the finisher thread); invalid pixels become 0 (confidence -1)."""
    out = []
    for yf, classes, conf in rows_out.push(y, block):
        ok = valid[yf - valid_y : yf - valid_y + classes.shape[0]]
        classes[~ok] = 0
        if conf is not None:
            conf[~ok] = -1.0
        out.append((yf, classes, conf))
    return out


def _hand_over(pending, sink: BlockSink, x: int, keep: int) -> None:
    """Hand the finished rows of the oldest jobs to the sink, in order, until at most ``keep`` are pending
    (the sink, which writes files, stays on this thread)."""
    while pending and (len(pending) > keep or pending[0].done()):
        for y, classes, conf in pending.popleft().result():
            sink(x, y, classes, conf)


class _ValidRing:
    """Full-resolution validity of the columns [x_a, x_b) in a ring buffer of ``size`` rows."""

    def __init__(self, size: int, x_a: int, x_b: int) -> None:
        self.size, self.x_a, self.x_b = size, x_a, x_b
        self.rows = np.zeros((size, x_b - x_a), dtype=bool)

    def put(self, x: int, y: int, valid: np.ndarray) -> None:
        a, b = max(x, self.x_a), min(x + valid.shape[1], self.x_b)
        if b <= a:
            return
        for ring0, src0, n in _ring_slices(y, valid.shape[0], self.size):
            self.rows[ring0 : ring0 + n, a - self.x_a : b - self.x_a] = valid[src0 : src0 + n, a - x : b - x]

    def get(self, y: int, n: int) -> np.ndarray:
        if n <= 0:
            return np.zeros((0, self.x_b - self.x_a), dtype=bool)
        return np.concatenate([self.rows[r0 : r0 + m] for r0, _, m in _ring_slices(y, n, self.size)])


class _BlendGrid:
    """The blended window grid of a raster: window starts and weights per axis, their sums, and the column
    panels (output columns [px0, px1) with the window columns touching them) that bound the accumulator."""

    def __init__(self, width: int, height: int, settings: PredictSettings, margin: int = 0) -> None:
        """``margin``: a panel also takes the windows touching that many columns beyond each of its sides."""
        self.width, self.height, self.settings = width, height, settings
        self.win, self.rows, self.ov = settings.window, settings.rows, settings.overlap
        self.xs, self.ys = axis_starts(width, self.win, self.ov), axis_starts(height, self.rows, self.ov)
        self.sx, self.sy = axis_weight_sum(width, self.win, self.ov), axis_weight_sum(height, self.rows,
                                                                                      self.ov)
        self.wy = [axis_weights(self.rows, self.ov, k == 0,
                                k == len(self.ys) - 1) for k in range(len(self.ys))]
        step = settings.panel_width(width)
        self.panels = [(px0, min(width, px0 + step),
                        [k for k, s in enumerate(self.xs)
                         if s < min(width, px0 + step) + margin and s + self.win > px0 - margin])
                       for px0 in range(0, width, step)]


class _Panel:
    """The blend of one column panel: a ring buffer of ``rows`` rows (probabilities and validity) spanning the
    panel's windows, filled window by window and emptied a band of finished rows at a time."""

    def __init__(self, grid: _BlendGrid, ops, px0: int, px1: int, cols: list[int],
                 track_valid: bool = True) -> None:
        self.grid, self.ops, self.px0, self.px1 = grid, ops, px0, px1
        self.span0 = grid.xs[cols[0]]
        span = grid.xs[cols[-1]] + grid.win - self.span0
        self.acc = ops.zeros((NUM_OUTPUTS, grid.rows, span))
        self.valid = np.zeros((grid.rows, span), dtype=bool) if track_valid else None
        self.wx = {k: axis_weights(grid.win, grid.ov, k == 0, k == len(grid.xs) - 1) for k in cols}
        self.weights: dict[tuple, object] = {}  # a window's 2-D weight depends only on which edges it touches

    def add(self, r: int, k: int, x0: int, y0: int, valid: np.ndarray | None, probs) -> None:
        """Blend the probabilities of the window in grid row ``r``, column ``k`` (top-left x0, y0) in."""
        grid, ops = self.grid, self.ops
        edges = (r == 0, r == len(grid.ys) - 1, k == 0, k == len(grid.xs) - 1)
        weight = self.weights.get(edges)
        if weight is None:
            weight = self.weights[edges] = ops.weight(grid.wy[r][:, None] * self.wx[k][None, :])
        c0 = x0 - self.span0
        # in place (no second window-sized temporary); the weight is < 1 only where windows overlap
        ops.apply_weight(probs, weight, tuple(0 if edge else grid.ov for edge in edges))
        for ring0, src0, n in _ring_slices(y0, grid.rows, grid.rows):
            self.acc[:, ring0 : ring0 + n, c0 : c0 + grid.win] += probs[:, src0 : src0 + n]
            if self.valid is not None:
                self.valid[ring0 : ring0 + n, c0 : c0 + grid.win] = valid[src0 : src0 + n]

    def take(self, y_a: int, y_b: int, chunk: int = 64):
        """Yield (y, ring row, n) for rows [y_a, y_b) in chunks of at most ``chunk`` rows (so the temporaries
        stay small on wide panels); each chunk's ring rows are cleared once the caller has used them."""
        for r0, s0, n in _ring_slices(y_a, y_b - y_a, self.grid.rows):
            for k in range(0, n, chunk):
                m = min(chunk, n - k)
                yield y_a + s0 + k, r0 + k, m
                self.acc[:, r0 + k : r0 + k + m] = 0.0

    def normalised(self, y: int, ring0: int, n: int, c_a: int, c_b: int) -> np.ndarray:
        """Blended probabilities of rows [y, y+n), columns [c_a, c_b), over the weights' sum (a copy)."""
        grid = self.grid
        norm = self.ops.weight(grid.sy[y : y + n, None] * grid.sx[None, c_a:c_b])
        return self.acc[:, ring0 : ring0 + n, c_a - self.span0 : c_b - self.span0] / norm

    def flush(self, y_a: int, y_b: int, sink: BlockSink, chunk: int = 64) -> None:
        """Normalise, classify and hand over rows [y_a, y_b) of the panel's columns, then clear them."""
        grid, ops, px0, px1 = self.grid, self.ops, self.px0, self.px1
        cols = slice(px0 - self.span0, px1 - self.span0)
        for y, ring0, n in self.take(y_a, y_b, chunk):
            block = self.acc[:, ring0 : ring0 + n, cols]
            if grid.settings.confidence:
                classes, conf = ops.classify(self.normalised(y, ring0, n, px0, px1), True)
            else:  # the class is the same without normalising: the blend weights' sum is positive
                classes, conf = ops.classify(block, False)
            valid = self.valid[ring0 : ring0 + n, cols]
            classes[~valid] = 0
            if conf is not None:
                conf[~valid] = -1.0
            sink(px0, y, classes, conf)


def _ring_slices(y0: int, n: int, size: int) -> list[tuple[int, int, int]]:
    """Pieces (ring_row, source_row, length) of rows [y0, y0+n) in a ring buffer of ``size`` rows."""
    out, src = [], 0
    while src < n:
        ring = (y0 + src) % size
        length = min(n - src, size - ring)
        out.append((ring, src, length))
        src += length
    return out


def _predict_centre_crop(inp, ops, settings, sink, progress, reader) -> None:
    """The reference scheme: 512 windows, stride 256, central 256x256 kept, zero padding before
    normalising."""
    keep, win, pad = 256, 512, 128
    width, height = inp.width, inp.height
    nx, ny = -(-width // keep), -(-height // keep)
    total, counter = nx * ny, [0]

    def read(wnd):
        data, valid = inp.read(wnd[1], wnd[2], win, win)  # zeros outside the raster, as the reference pads
        return ops.prepare(data, valid, False), valid

    for i in range(ny):
        y = i * keep
        h = min(keep, height - y)
        windows = [(j, j * keep - pad, y - pad) for j in range(nx)]
        row_classes = np.zeros((h, width), dtype=np.uint8)
        row_conf = np.zeros((h, width), dtype=np.float32) if settings.confidence else None
        row_valid = np.zeros((h, width), dtype=bool)
        for (j, _, _), valid, probs in _run_batches(windows, read, ops, settings.batch_size,
                                                    progress, counter, total, reader):
            x = j * keep
            w = min(keep, width - x)
            classes, conf = ops.classify(probs[:, pad : pad + h, pad : pad + w], settings.confidence)
            row_classes[:, x : x + w] = classes
            row_valid[:, x : x + w] = valid[pad : pad + h, pad : pad + w]
            if row_conf is not None:
                row_conf[:, x : x + w] = conf
        row_classes[~row_valid] = 0
        if row_conf is not None:
            row_conf[~row_valid] = -1.0
        sink(0, y, row_classes, row_conf)
