"""Normalisation statistics: published constants, per-scene statistics, parsing."""

from __future__ import annotations

import numpy as np
import pytest

from fbp_landcover.engine.errors import FbpError
from fbp_landcover.engine.io.normalize import (
    CITY_STATS,
    FBP_SOURCE_STATS,
    STD_FLOOR,
    Stats,
    parse_stats,
    scene_stats,
)
from fbp_landcover.engine.io.raster import open_input
from fbp_landcover.engine.io.sensors import PROFILES
from tests.rasters import write_raster


def test_published_constants():
    assert FBP_SOURCE_STATS.mean == (0.506, 0.371, 0.390, 0.363)
    assert FBP_SOURCE_STATS.std == (0.254, 0.244, 0.231, 0.231)
    assert set(CITY_STATS) == {"wuhan", "chengdu", "shanghai", "beijing", "guangzhou"}
    assert CITY_STATS["wuhan"] == Stats((0.537, 0.375, 0.374, 0.370), (0.239, 0.237, 0.230, 0.229), "wuhan")
    assert CITY_STATS["guangzhou"].mean == (0.590, 0.286, 0.323, 0.308)
    assert CITY_STATS["shanghai"].std == (0.284, 0.269, 0.263, 0.260)


def test_scene_stats_hand_computed(tmp_path):
    # R,G,B,NIR (rgbn) 4x4 uint8 with nodata 0: R's zero columns and G's zero pixel (0, 1) are excluded
    # from every band, leaving columns 1 and 3 minus (0, 1): 7 pixels
    r = np.array([[0, 255, 0, 255]] * 4, np.uint8)
    g = np.full((4, 4), 51, np.uint8)
    g[0, 1] = 0
    b = np.array([[102] * 4, [102] * 4, [204] * 4, [204] * 4], np.uint8)
    nir = np.full((4, 4), 153, np.uint8)
    path = write_raster(tmp_path / "s.tif", np.stack([r, g, b, nir]), nodata=0)
    with open_input(path, PROFILES["rgbn"]) as inp:
        st = scene_stats(inp)
    # B keeps three 0.4 and four 0.8: mean 4.4/7, std 0.4*sqrt(3*4)/7
    assert st.mean == pytest.approx((0.6, 1.0, 0.2, 4.4 / 7), abs=1e-7)
    assert st.std == pytest.approx((STD_FLOOR, STD_FLOOR, STD_FLOOR, 0.4 * np.sqrt(12) / 7), abs=1e-7)
    assert "7 pixels" in st.source


def test_scene_stats_all_nodata(tmp_path):
    path = write_raster(tmp_path / "empty.tif", np.zeros((4, 3, 3), np.uint8), nodata=0)
    with open_input(path, PROFILES["rgbn"]) as inp, pytest.raises(FbpError, match="all nodata"):
        scene_stats(inp)


def test_scene_stats_sample_is_bounded(shared_data):
    with open_input(shared_data / "haiti_rgbn_5m.tif", PROFILES["rgbn"]) as inp:
        assert inp.sample(1000).shape == (4, 1000)
        full = scene_stats(inp, max_pixels=515 * 403)
        raw = inp.read(0, 0, 515, 403)[0].reshape(4, -1).astype(np.float64)
    assert full.mean == pytest.approx(tuple(raw.mean(axis=1)), abs=1e-6)
    assert full.std == pytest.approx(tuple(raw.std(axis=1)), abs=1e-6)


def test_parse_stats():
    assert parse_stats("Wuhan") is CITY_STATS["wuhan"]
    assert parse_stats(" fbp ") is FBP_SOURCE_STATS
    st = parse_stats("0.5, 0.4,0.3,0.2, 0.25,0.24,0.23,0.22")
    assert st == Stats((0.5, 0.4, 0.3, 0.2), (0.25, 0.24, 0.23, 0.22), "given")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("paris", "neither a known name"),
        ("0.5,0.4,0.3,0.2,0.25,0.24,0.23", "have 7 value"),
        ("0.5,0.4,0.3,x,0.25,0.24,0.23,0.22", "'x' not a number"),
        ("129,94,99,92,65,62,59,59", "divided by 255"),
        ("0.5,0.4,0.3,0.2,0.25,0,0.23,0.22", "stds in \\(0, 1\\]"),
        ("0.5,0.4,0.3,nan,0.25,0.24,0.23,0.22", "'nan' not a number"),
    ],
)
def test_parse_stats_errors(text, fragment):
    with pytest.raises(FbpError, match=fragment):
        parse_stats(text)


def test_stats_dict_round_trip():
    st = CITY_STATS["beijing"]
    assert Stats.from_dict(st.to_dict()) == st
    assert st.to_dict() == {"mean": [0.520, 0.391, 0.416, 0.385], "std": [0.247, 0.255, 0.241, 0.236],
                            "source": "beijing"}
    with pytest.raises(FbpError, match="4 means and 4 positive stds"):
        Stats.from_dict({"mean": [0.1, 0.2, 0.3], "std": [0.1, 0.1, 0.1, 0.1]})
    with pytest.raises(FbpError, match="not a dict of 'mean' and 'std'"):
        Stats.from_dict({"mean": [0.1]})
