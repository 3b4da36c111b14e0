"""Streaming prediction: the reference scheme reproduced pixel for pixel, seamless blending, bounded
panels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fbp_landcover.engine.inference.classify import classes_and_confidence
from fbp_landcover.engine.inference.predict import PredictSettings, predict
from fbp_landcover.engine.io.normalize import Stats

STATS = Stats(mean=(0.506, 0.371, 0.390, 0.363), std=(0.254, 0.244, 0.231, 0.231), source="FBP source")


class ArrayInput:
    """A ModelInput over an in-memory (4, h, w) 0..1 array, boundless like the real one."""

    def __init__(self, data: np.ndarray, valid: np.ndarray | None = None) -> None:
        self.data = data.astype(np.float32)
        self.valid = np.ones(data.shape[1:], bool) if valid is None else valid
        self.height, self.width = data.shape[1:]
        self.reads = []

    def read(self, x, y, w, h):
        self.reads.append((x, y, w, h))
        out = np.zeros((4, h, w), np.float32)
        valid = np.zeros((h, w), bool)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, self.width), min(y + h, self.height)
        if x1 > x0 and y1 > y0:
            out[:, y0 - y : y1 - y, x0 - x : x1 - x] = self.data[:, y0:y1, x0:x1]
            valid[y0 - y : y1 - y, x0 - x : x1 - x] = self.valid[y0:y1, x0:x1]
        return out, valid


def softmax(z, axis=1):
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


class PixelModel:
    """A per-pixel model (1x1 'convolution'): its output at a pixel depends on that pixel only."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.w = rng.normal(size=(25, 4)).astype(np.float32) * 3
        self.b = rng.normal(size=25).astype(np.float32)
        self.calls = 0

    def logits(self, batch):
        return np.einsum("ck,nkhw->nchw", self.w, batch) + self.b[None, :, None, None]

    def __call__(self, batch):
        self.calls += 1
        return softmax(self.logits(batch)).astype(np.float32)


class ContextModel(PixelModel):
    """A model with spatial context (a 5x5 box filter before the pixel model), zero-padded at window edges."""

    def __call__(self, batch):
        n, c, h, w = batch.shape
        padded = np.pad(batch, ((0, 0), (0, 0), (2, 2), (2, 2)))
        box = sum(padded[:, :, dy : dy + h, dx : dx + w] for dy in range(5) for dx in range(5)) / 25
        return softmax(self.logits(box)).astype(np.float32)


def run(inp, model, **kw):
    settings = PredictSettings(**kw)
    classes = np.full((inp.height, inp.width), 255, np.uint8)
    conf = np.full((inp.height, inp.width), np.nan, np.float32)
    written = np.zeros((inp.height, inp.width), int)

    def sink(x, y, block, c):
        h, w = block.shape
        classes[y : y + h, x : x + w] = block
        written[y : y + h, x : x + w] += 1
        if c is not None:
            conf[y : y + h, x : x + w] = c

    predict(inp, model, STATS, settings, sink)
    assert (written == 1).all(), "every output pixel is written exactly once"
    return classes, conf


def reference_centre_crop(image01: np.ndarray, model) -> np.ndarray:
    """A straightforward re-implementation of the authors' prediction: whole image in memory."""
    _, h, w = image01.shape
    ny, nx = math.ceil(h / 256), math.ceil(w / 256)
    padded = np.zeros((4, 256 * ny + 256, 256 * nx + 256), np.float32)
    padded[:, 128 : 128 + h, 128 : 128 + w] = image01
    mean = np.array(STATS.mean, np.float32)[:, None, None]
    std = np.array(STATS.std, np.float32)[:, None, None]
    out = np.zeros((256 * ny, 256 * nx), np.uint8)
    for i in range(ny):
        for j in range(nx):
            window = (padded[:, 256 * i : 256 * i + 512, 256 * j : 256 * j + 512] - mean) / std
            probs = model(window[None])[0]
            centre = probs[1:, 128:384, 128:384]
            out[256 * i : 256 * i + 256, 256 * j : 256 * j + 256] = np.argmax(centre, axis=0) + 1
    return out[:h, :w]


def smooth_image(h, w, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.random((4, h // 8 + 2, w // 8 + 2))
    yi, xi = np.arange(h) // 8, np.arange(w) // 8
    return (small[:, yi][:, :, xi] * 0.9 + rng.random((4, h, w)) * 0.1).astype(np.float32)


@pytest.mark.parametrize("h,w", [(300, 530), (256, 256), (70, 900)])
def test_centre_crop_reproduces_the_reference_pixel_for_pixel(h, w):
    image = smooth_image(h, w, seed=h)
    model = ContextModel(seed=1)
    ours, _ = run(ArrayInput(image), model, stitch="centre-crop", window=512, overlap=256, batch_size=3)
    np.testing.assert_array_equal(ours, reference_centre_crop(image, model))


@pytest.mark.parametrize("h,w,window,overlap", [(1, 1, 64, 8), (37, 200, 64, 16), (200, 37, 64, 0),
                                                 (130, 130, 64, 32), (257, 191, 96, 24)])
def test_blend_of_a_per_pixel_model_equals_the_direct_per_pixel_map(h, w, window, overlap):
    """Blending normalises the weights, so a per-pixel model gives exactly its own map: no seams, no edges."""
    image = smooth_image(h, w, seed=w)
    model = PixelModel(seed=2)
    ours, conf = run(ArrayInput(image), model, window=window, overlap=overlap, batch_size=2, confidence=True)
    mean = np.array(STATS.mean, np.float32)[:, None, None]
    std = np.array(STATS.std, np.float32)[:, None, None]
    probs = model(((image - mean) / std)[None])[0]
    direct, direct_conf = classes_and_confidence(probs, True)
    np.testing.assert_array_equal(ours, direct)
    np.testing.assert_allclose(conf, direct_conf, atol=2e-5)
    assert ours.min() >= 1 and ours.max() <= 24


class PositionModel(PixelModel):
    """Each window's output also depends on the position inside the window, so overlapping windows disagree
    and the blend weights decide the result."""

    def __call__(self, batch):
        n, _, h, w = batch.shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        bias = np.stack([np.sin(yy * (c + 1) / 17.0) + np.cos(xx * (c + 2) / 13.0) for c in range(25)])
        return softmax(self.logits(batch) + 2 * bias[None]).astype(np.float32)


def direct_blend(image, model, window, window_y, overlap):
    """Σ weight x probabilities / Σ weight over all windows, with full 2-D weights: the definition."""
    from fbp_landcover.engine.inference.tiling import axis_starts, axis_weights

    _, h, w = image.shape
    mean = np.array(STATS.mean, np.float32)[:, None, None]
    std = np.array(STATS.std, np.float32)[:, None, None]
    xs, ys = axis_starts(w, window, overlap), axis_starts(h, window_y, overlap)
    acc = np.zeros((25, max(h, window_y) + 0, max(w, window)), np.float64)
    norm = np.zeros(acc.shape[1:], np.float64)
    for r, y0 in enumerate(ys):
        for k, x0 in enumerate(xs):
            inp = ArrayInput(image)
            data, valid = inp.read(x0, y0, window, window_y)
            x = (data - mean) / std
            x[:, ~valid] = 0.0
            probs = model(x[None])[0].astype(np.float64)
            weight = (axis_weights(window_y, overlap, r == 0, r == len(ys) - 1)[:, None]
                      * axis_weights(window, overlap, k == 0, k == len(xs) - 1)[None, :])
            acc[:, y0 : y0 + window_y, x0 : x0 + window] += probs * weight
            norm[y0 : y0 + window_y, x0 : x0 + window] += weight
    return classes_and_confidence((acc / norm)[:, :h, :w], True)


@pytest.mark.parametrize("h,w,window,window_y,overlap", [(300, 410, 128, 96, 32), (150, 150, 96, 96, 64),
                                                          (90, 300, 64, 128, 40)])
def test_blend_weights_windows_that_disagree_as_defined(h, w, window, window_y, overlap):
    """Where windows disagree, each pixel gets the weighted mean of their probabilities (also with margins
    wider than half the window, where the ramps of both sides meet)."""
    image = smooth_image(h, w, seed=h + w)
    model = PositionModel(seed=4)
    ours, conf = run(ArrayInput(image), model, window=window, window_y=window_y, overlap=overlap,
                     batch_size=3, confidence=True)
    direct, direct_conf = direct_blend(image, model, window, window_y, overlap)
    np.testing.assert_array_equal(ours, direct)
    np.testing.assert_allclose(conf, direct_conf, atol=2e-5)
    plain, _ = run(ArrayInput(image), model, window=window, window_y=window_y, overlap=overlap, batch_size=3)
    np.testing.assert_array_equal(plain, direct)  # without confidence the class skips the normalisation


def test_rectangular_windows_blend_seamlessly():
    image = smooth_image(150, 90, seed=7)
    model = PixelModel(seed=4)
    ours, _ = run(ArrayInput(image), model, window=64, window_y=96, overlap=16)
    mean = np.array(STATS.mean, np.float32)[:, None, None]
    std = np.array(STATS.std, np.float32)[:, None, None]
    direct, _ = classes_and_confidence(model(((image - mean) / std)[None])[0], False)
    np.testing.assert_array_equal(ours, direct)


def test_panels_do_not_change_the_map():
    """A tiny memory budget forces many column panels; the result is identical to one panel."""
    image = smooth_image(96, 700, seed=5)
    model = ContextModel(seed=3)
    one, c1 = run(ArrayInput(image), model, window=64, overlap=16, confidence=True)
    inp = ArrayInput(image)
    many, c2 = run(inp, model, window=64, overlap=16, confidence=True, memory_budget_mb=1)
    assert PredictSettings(window=64, overlap=16, memory_budget_mb=1).panel_width(700) < 300
    np.testing.assert_array_equal(one, many)
    np.testing.assert_allclose(c1, c2, atol=1e-6)


def test_nodata_becomes_zero_and_confidence_minus_one():
    image = smooth_image(80, 90)
    valid = np.ones((80, 90), bool)
    valid[10:20, 30:70] = False
    classes, conf = run(ArrayInput(image, valid), PixelModel(), window=64, overlap=16, confidence=True)
    assert (classes[~valid] == 0).all() and (classes[valid] >= 1).all()
    assert (conf[~valid] == -1).all() and (conf[valid] >= 0).all() and (conf[valid] <= 1).all()


def test_confidence_is_one_minus_normalised_entropy():
    probs = np.zeros((25, 1, 3), np.float32)
    probs[5, 0, 0] = 1.0  # certain
    probs[:, 0, 1] = 1 / 25  # uniform over 25 channels
    probs[0, 0, 2], probs[7, 0, 2] = 0.6, 0.4  # channel 0 never wins the class
    classes, conf = classes_and_confidence(probs, True)
    assert classes.tolist() == [[5, 1, 7]]
    expected = 1 + (0.6 * math.log2(0.6) + 0.4 * math.log2(0.4)) / math.log2(25)
    np.testing.assert_allclose(conf[0], [1.0, 0.0, expected], atol=1e-6)


def test_reads_are_bounded_by_the_window():
    image = smooth_image(300, 300)
    inp = ArrayInput(image)
    run(inp, PixelModel(), window=64, overlap=16)
    assert max(w * h for _, _, w, h in inp.reads) <= 300 * 64


class TorchPixelBackend:
    """A torch 'backend' on the CPU that asks for device-side blending, as a CUDA backend does."""

    device = "cpu"
    device_blend = True

    def __init__(self, model: PixelModel):
        from fbp_landcover.engine.torch_import import import_torch

        self.torch = import_torch()
        self.model = model

    def device_probabilities(self, x):
        probs = self.model(x.numpy())
        return self.torch.from_numpy(probs)


def test_device_side_blending_equals_host_blending():
    """The GPU path (normalise, blend, classify on the device) gives the host path's map and confidence."""
    image = smooth_image(150, 170, seed=9)
    valid = np.ones((150, 170), bool)
    valid[5:20, 100:160] = False
    model = PixelModel(seed=5)
    host, hc = run(ArrayInput(image, valid), model, window=64, window_y=96, overlap=16, confidence=True)
    dev, dc = run(ArrayInput(image, valid), TorchPixelBackend(model), window=64, window_y=96, overlap=16,
                  confidence=True)
    np.testing.assert_array_equal(host, dev)
    np.testing.assert_allclose(hc, dc, atol=1e-5)
    cc_host, _ = run(ArrayInput(image), model, stitch="centre-crop")
    cc_dev, _ = run(ArrayInput(image), TorchPixelBackend(model), stitch="centre-crop")
    np.testing.assert_array_equal(cc_host, cc_dev)


def test_argmax_classes_is_numpys_argmax_over_classes_1_to_24_first_maximum_on_ties():
    from fbp_landcover.engine.inference.classify import argmax_classes

    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, (25, 40, 50)).astype(np.float32)  # many ties
    scores[0] = 10.0  # channel 0 is never a class, however high
    expected = (np.argmax(scores[1:], axis=0) + 1).astype(np.uint8)
    ours = argmax_classes(scores)
    assert ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, expected)
