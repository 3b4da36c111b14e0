"""Masked pixels (a product's own mask or a user's) in mapping and adaptation: nodata in the class map,
out of the areas (the table says how many km² were masked), out of the normalisation statistics, and never
a pseudo-label or a target-patch pixel of adaptation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from osgeo import gdal

from fbp_landcover.engine.io.normalize import scene_stats
from fbp_landcover.engine.io.raster import open_input
from fbp_landcover.engine.io.sensors import PROFILES
from fbp_landcover.engine.mapping import MapRequest, map_landcover
from fbp_landcover.engine.training import dpa
from fbp_landcover.engine.training.config import AdaptOptions
from fbp_landcover.engine.training.sampler import TargetSampler
from tests.models import tiny_checkpoint
from tests.rasters import random_scene, write_raster

GT = (500000.0, 4.0, 0.0, 4000000.0, 0.0, -4.0)  # 4 m pixels: 16 m² each


@pytest.fixture()
def scene(tmp_path):
    img = random_scene(96, 128, dtype=np.uint16) + 100
    mask = np.zeros((96, 128), np.uint8)
    mask[:, :48] = 1  # a "cloud" over the left 48 columns
    mask[80:, 100:] = 7
    return (write_raster(tmp_path / "gf2.tif", img, geotransform=GT),
            write_raster(tmp_path / "cloud.tif", mask, geotransform=GT), mask.astype(bool), img)


def test_masked_pixels_are_nodata_and_counted_as_masked_km2(scene, tmp_path):
    img, mask_path, mask, _ = scene
    model = tiny_checkpoint(tmp_path / "tiny.fbpmodel")
    res = map_landcover(MapRequest(image=str(img), output=str(tmp_path / "map.tif"), model=str(model),
                                   sensor="gaofen2", mask=str(mask_path), areas=str(tmp_path / "a.csv")))
    data = gdal.Open(res.output).ReadAsArray()
    np.testing.assert_array_equal(data == 0, mask)
    n = int(mask.sum())
    assert res.mask["masked_pixels"] == n and res.mask["masked_km2"] == pytest.approx(n * 16 / 1e6)
    assert res.mask["masked_share"] == pytest.approx(n / mask.size, abs=1e-6)
    assert sum(r["pixels"] for r in res.areas) == mask.size - n
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["masked"]["masked_pixels"] == n and doc["total"]["pixels"] == mask.size - n
    last = (tmp_path / "a.csv").read_text().strip().splitlines()[-1].split(",")
    assert last[1] == "masked" and int(last[3]) == n
    md = json.loads(gdal.Open(res.output).GetMetadataItem("FBP_MASK"))
    assert md["masked_pixels"] == n and md["used"][0].startswith("user mask")


def test_mask_none_and_no_mask_found(scene, tmp_path):
    img, *_ = scene
    model = tiny_checkpoint(tmp_path / "tiny.fbpmodel")
    res = map_landcover(MapRequest(image=str(img), output=str(tmp_path / "map.tif"), model=str(model),
                                   sensor="gaofen2", areas=str(tmp_path / "a.csv")))
    assert res.mask["used"] == [] and res.mask["masked_pixels"] == 0
    assert "no product mask" in res.mask["found"]
    assert "masked" not in json.loads((tmp_path / "a.json").read_text())


def test_normalisation_statistics_exclude_masked_pixels(scene):
    img, mask_path, mask, raw = scene
    with open_input(str(img), PROFILES["gaofen2"], mask=str(mask_path)) as inp:
        st = scene_stats(inp)
    clear = np.clip(raw[:, ~mask].astype(np.float64) / 1023.0, 0, 1)  # NIR,R,G,B = bands 4,3,2,1 (10-bit)
    expected = [clear[b].mean() for b in (3, 2, 1, 0)]
    np.testing.assert_allclose(st.mean, expected, rtol=1e-4)
    with open_input(str(img), PROFILES["gaofen2"], mask="none") as inp:
        unmasked = scene_stats(inp)
    assert not np.allclose(unmasked.mean, expected, rtol=1e-4)  # the test would see it if masks were ignored


def test_masked_pixels_never_target_patches_or_pseudo_labels(scene, tmp_path, monkeypatch):
    img, mask_path, mask, _ = scene
    reads, labels = [], []
    original_read, original_assign = TargetSampler.read, dpa.assign_pseudo_labels

    def read(self, k, x, y, augment=None):
        out = original_read(self, k, x, y, augment)
        reads.append((x, y, out[1]))
        return out

    def assign(logits, ratio, class_quota=None, valid=None, entropy=None):
        out = original_assign(logits, ratio, class_quota, valid, entropy)
        labels.append((out.numpy().copy(), valid.numpy().copy()))
        return out

    monkeypatch.setattr(TargetSampler, "read", read)
    monkeypatch.setattr(dpa, "assign_pseudo_labels", assign)
    model = tiny_checkpoint(tmp_path / "tiny.fbpmodel")
    map_landcover(MapRequest(image=str(img), output=str(tmp_path / "map.tif"), model=str(model),
                             sensor="gaofen2", mask=str(mask_path),
                             adapt=AdaptOptions(iterations=3, batch_size=2, patch=64, augment=False,
                                                method="pseudo", device="cpu")))
    assert reads and labels
    for x, y, valid in reads:
        win = np.zeros((64, 64), bool)  # where the mask lies in this (boundless) window
        inside = mask[max(y, 0):y + 64, max(x, 0):x + 64]
        win[:inside.shape[0], :inside.shape[1]] = inside
        assert not valid[win].any()  # no masked pixel is a valid target-patch pixel
    for lab, valid in labels:
        assert (lab[~valid] == 0).all() and (lab[valid] > 0).any()


def test_the_input_itself_as_the_mask_is_refused(scene, tmp_path):
    img, _mask_path, _mask, _ = scene
    model = tiny_checkpoint(tmp_path / "tiny.fbpmodel")
    with pytest.raises(Exception, match="is the input image itself: every non-zero pixel would be left"):
        map_landcover(MapRequest(image=str(img), output=str(tmp_path / "m.tif"), model=str(model),
                                 sensor="gaofen2", mask=str(img)))
    assert not (tmp_path / "m.tif").exists()
