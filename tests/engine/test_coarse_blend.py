"""Blending at a model's coarse resolution (the FPN's 1/4) and upsampling once: the classes are those of the
bilinear upsampling of the coarse blend, exactly; panels and row bands do not change them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fbp_landcover.engine.inference.classify import (
    argmax_classes,
    bilinear_argmax,
    bilinear_plane,
    confidence,
)
from fbp_landcover.engine.inference.predict import PredictSettings, coarse_scale
from fbp_landcover.engine.inference.tiling import axis_starts, axis_weight_sum, axis_weights

from .test_predict import STATS, ArrayInput, run, smooth_image, softmax


def upsampled(coarse: np.ndarray, scale: int) -> np.ndarray:
    """The definition: torch's bilinear upsampling with half-pixel centres, edges clamped."""
    return torch.nn.functional.interpolate(torch.from_numpy(coarse)[None], scale_factor=scale,
                                           mode="bilinear", align_corners=False)[0].numpy()


@pytest.mark.parametrize("hc,wc,scale,sharp", [(9, 13, 4, 3.0), (30, 7, 4, 0.5), (12, 12, 2, 3.0),
                                               (5, 40, 8, 1.0)])
def test_bilinear_argmax_is_the_argmax_of_the_upsampled_probabilities(hc, wc, scale, sharp):
    rng = np.random.default_rng(hc * wc)
    smooth = np.repeat(np.repeat(rng.normal(size=(25, hc // 3 + 1, wc // 3 + 1)), 3, 1), 3, 2)[:, :hc, :wc]
    probs = softmax((smooth + 0.3 * rng.normal(size=(25, hc, wc))) * sharp, axis=0).astype(np.float32)
    corners = np.pad(probs, ((0, 0), (1, 1), (1, 1)), mode="edge")
    o = scale // 2
    ours = bilinear_argmax(corners, scale, o, o, hc * scale, wc * scale)
    full = upsampled(probs, scale)
    np.testing.assert_array_equal(ours, argmax_classes(full))
    k = argmax_classes(corners)
    boundary = (k[:-1, :-1] != k[1:, 1:]) | (k[:-1, :-1] != k[1:, :-1]) | (k[:-1, :-1] != k[:-1, 1:])
    assert 0 < boundary.mean() < 1  # both the shortcut and the interpolated cells were exercised
    plane = bilinear_plane(np.pad(confidence(probs), 1, mode="edge"), scale, o, o, hc * scale, wc * scale)
    np.testing.assert_allclose(plane, upsampled(confidence(probs)[None], scale)[0], atol=1e-6)


def test_a_cell_whose_four_corners_agree_keeps_their_class_even_against_ties():
    corners = np.zeros((25, 2, 2), np.float32)
    corners[3], corners[9] = 0.5, 0.5  # tied everywhere: the first maximum, 3, wins
    corners[9, 1, 1] = 0.2
    corners[3, 1, 1] = 0.8
    assert (bilinear_argmax(corners, 4, 0, 0, 4, 4) == 3).all()


class CoarsePositionModel:
    """A coarse 'backend' (scale 4): each 4x4 block's mean through a per-pixel model plus a bias that depends
    on the position inside the window, so overlapping windows disagree and the blend weights matter."""

    scale = 4

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.w = rng.normal(size=(25, 4)).astype(np.float32) * 3
        self.b = rng.normal(size=25).astype(np.float32)

    def coarse(self, batch):
        n, c, h, w = batch.shape
        pooled = batch.reshape(n, c, h // 4, 4, w // 4, 4).mean(axis=(3, 5))
        yy, xx = np.mgrid[0 : h // 4, 0 : w // 4].astype(np.float32)
        bias = np.stack([np.sin(yy * (k + 1) / 7.0) + np.cos(xx * (k + 2) / 5.0) for k in range(25)])
        logits = np.einsum("ck,nkhw->nchw", self.w, pooled) + self.b[None, :, None, None] + bias[None]
        return softmax(logits).astype(np.float32)

    def __call__(self, batch):
        return np.stack([upsampled(p, 4) for p in self.coarse(batch)])


def direct_coarse_blend(image, valid, model, window, window_y, overlap):
    """The definition, whole image in memory: the weighted blend of every window's coarse probabilities on the
    coarse grid (float32, the windows in order), divided by the weights' sum, upsampled, argmax."""
    s = model.scale
    _, h, w = image.shape
    hc, wc = -(-h // s), -(-w // s)
    win, rows, ov = window // s, window_y // s, overlap // s
    xs, ys = axis_starts(wc, win, ov), axis_starts(hc, rows, ov)
    acc = np.zeros((25, max(hc, rows), max(wc, win)), np.float32)
    mean = np.array(STATS.mean, np.float32)[:, None, None]
    std = np.array(STATS.std, np.float32)[:, None, None]
    inp = ArrayInput(image, valid)
    for r, y0 in enumerate(ys):
        for k, x0 in enumerate(xs):
            data, ok = inp.read(x0 * s, y0 * s, win * s, rows * s)
            x = (data - mean) / std
            x[:, ~ok] = 0.0
            weight = (axis_weights(rows, ov, r == 0, r == len(ys) - 1)[:, None]
                      * axis_weights(win, ov, k == 0, k == len(xs) - 1)[None, :]).astype(np.float32)
            acc[:, y0 : y0 + rows, x0 : x0 + win] += model.coarse(x[None])[0] * weight
    norm = (axis_weight_sum(hc, rows, ov)[:, None] * axis_weight_sum(wc, win, ov)[None, :]).astype(np.float32)
    blend = acc[:, :hc, :wc] / norm
    classes = argmax_classes(upsampled(blend, s)[:, :h, :w])
    conf = upsampled(confidence(blend)[None], s)[0, :h, :w]
    classes[~valid] = 0
    conf[~valid] = -1.0
    return classes, conf


@pytest.mark.parametrize("h,w,window,window_y,overlap", [(301, 415, 128, 96, 32), (150, 150, 96, 96, 64),
                                                          (90, 302, 64, 128, 40), (3, 5, 64, 64, 16)])
def test_the_coarse_blend_gives_the_classes_of_its_definition(h, w, window, window_y, overlap):
    image = smooth_image(h, w, seed=h + w)
    valid = np.ones((h, w), bool)
    valid[h // 3 : h // 2, w // 4 : w // 2] = False
    model = CoarsePositionModel(seed=4)
    ours, conf = run(ArrayInput(image, valid), model, window=window, window_y=window_y, overlap=overlap,
                     batch_size=3, confidence=True)
    direct, direct_conf = direct_coarse_blend(image, valid, model, window, window_y, overlap)
    np.testing.assert_array_equal(ours, direct)
    np.testing.assert_allclose(conf, direct_conf, atol=1e-5)
    assert (ours[~valid] == 0).all() and (ours[valid] >= 1).all()


def test_a_scene_in_one_panel_and_in_many_gives_the_same_map():
    """A tiny memory budget splits the coarse map into column panels; classes and confidence are the same."""
    image = smooth_image(70, 4001, seed=5)
    model = CoarsePositionModel(seed=3)
    one, c1 = run(ArrayInput(image), model, window=128, overlap=32, confidence=True)
    coarse = PredictSettings(window=32, overlap=8, memory_budget_mb=1)
    assert coarse.panel_width(1001) < 1001 // 3  # at least three panels
    many, c2 = run(ArrayInput(image), model, window=128, overlap=32, confidence=True, memory_budget_mb=1)
    np.testing.assert_array_equal(one, many)
    np.testing.assert_array_equal(c1, c2)


def test_the_coarse_blend_runs_only_where_the_grid_allows_it():
    model = CoarsePositionModel()
    assert coarse_scale(model, PredictSettings(window=128, overlap=32)) == 4
    assert coarse_scale(model, PredictSettings(window=128, overlap=30)) == 1  # overlap not a multiple of 4
    assert coarse_scale(model, PredictSettings(window=128, overlap=32, coarse=False)) == 1
    assert coarse_scale(model, PredictSettings(stitch="centre-crop")) == 1
    # the full-resolution path on the same model: the same map up to the blend being taken before or after
    # the upsampling (they differ only where windows overlap and disagree)
    image = smooth_image(200, 260, seed=1)
    fast, _ = run(ArrayInput(image), model, window=128, overlap=32)
    full, _ = run(ArrayInput(image), model, window=128, overlap=32, coarse=False)
    assert (fast == full).mean() > 0.9


def test_boundary_cells_with_tied_classes_take_the_first_maximum_as_the_upsampling_does():
    """Only the classes that can win a cell are interpolated; with many exact ties the lowest tied class still
    wins, as the argmax of the full upsampling."""
    rng = np.random.default_rng(11)
    probs = rng.integers(0, 3, (25, 14, 17)).astype(np.float32) / 8  # many exact ties
    corners = np.pad(probs, ((0, 0), (1, 1), (1, 1)), mode="edge")
    ours = bilinear_argmax(corners, 4, 2, 2, 56, 68)
    np.testing.assert_array_equal(ours, argmax_classes(upsampled(probs, 4)))


def test_a_compact_model_is_mapped_at_quarter_resolution_and_the_map_says_so(tmp_path):
    """End to end with the compact preset (an smp FPN): the blend runs at 1/4 resolution, the metadata says
    so, and every valid pixel gets one of the 24 classes; the full-resolution blend is still chosen for the
    reference mode."""
    from osgeo import gdal

    from fbp_landcover.engine.mapping import MapRequest, map_landcover
    from fbp_landcover.engine.models.presets import preset

    from ..models import tiny_checkpoint
    from ..rasters import random_scene, write_raster

    preset_fields = {k: v for k, v in preset("compact").items() if k != "architecture"}
    model = tiny_checkpoint(tmp_path / "fpn.fbpmodel", **preset_fields)
    image = write_raster(tmp_path / "scene.tif", random_scene(301, 259))
    out = tmp_path / "map.tif"
    map_landcover(MapRequest(image=str(image), output=str(out), model=str(model), sensor="rgbn",
                             backend="torch", confidence=str(tmp_path / "conf.tif")))
    ds = gdal.Open(str(out))
    assert "at 1/4 resolution, upsampled once" in ds.GetMetadataItem("FBP_STITCH")
    classes = ds.ReadAsArray()
    assert classes.shape == (301, 259) and classes.min() >= 1 and classes.max() <= 24
    conf = gdal.Open(str(tmp_path / "conf.tif")).ReadAsArray()
    assert conf.min() >= 0 and conf.max() <= 1
    crop = tmp_path / "cc.tif"
    map_landcover(MapRequest(image=str(image), output=str(crop), model=str(model), sensor="rgbn",
                             stitch="centre-crop"))
    assert "resolution" not in gdal.Open(str(crop)).GetMetadataItem("FBP_STITCH")
