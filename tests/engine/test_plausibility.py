"""Plausibility checks before a run: a wrong but plausible sensor warns, the right one does not."""

from __future__ import annotations

import numpy as np

from fbp_landcover.engine.io import plausibility
from tests.rasters import write_raster


def test_naip_uint8_as_sentinel2_warns_and_as_rgbn_does_not(shared_data):
    naip = str(shared_data / "naip_nd_2020_rgbn_5m.tif")
    warnings = plausibility.check(naip, "sentinel2")
    assert warnings[0].startswith("The raster holds 8-bit values but the 'Sentinel-2 L1C/L2A")
    assert "16-bit reflectance x 10000" in warnings[0]
    assert plausibility.check(naip, "rgbn") == []


def test_16bit_values_under_a_10bit_profile_reach_above_range(tmp_path):
    data = np.full((4, 64, 64), 3000, dtype=np.uint16)  # reflectance x 10000 read as 10-bit DN: 3000/1023
    path = write_raster(tmp_path / "s2like.tif", data)
    warnings = plausibility.check(str(path), "gaofen2")
    assert len(warnings) == 4 and warnings[0].startswith("NIR values reach 2.93 after the 'Gaofen-2")
    assert plausibility.check(str(path), "planetscope") == []


def test_8bit_data_read_as_16bit_has_band_means_far_too_low(tmp_path):
    data = np.full((4, 64, 64), 120, dtype=np.uint16)  # 8-bit values stored as 16-bit, unknown depth: /65535
    path = write_raster(tmp_path / "dark.tif", data)
    warnings = plausibility.check(str(path), "custom:nir=4,r=1,g=2,b=3")
    assert warnings[0] == ("The NIR band's mean is 0.002 after the 'Custom band mapping' scaling, far from "
                           "the 0.02-0.6 a land surface gives: the data are probably not this sensor's; "
                           "choose another sensor or give the scale.")


def test_an_unusable_sensor_is_left_to_the_run(tmp_path):
    path = write_raster(tmp_path / "two.tif", np.zeros((2, 8, 8), dtype=np.uint8))
    assert plausibility.check(str(path), "auto") == []


def test_reflectance_x10000_under_a_generic_16bit_profile_is_named(tmp_path):
    """bgrn on PlanetScope-like reflectance x 10000 reads DN / 65535: about 6.5 times too dark, said in one
    sentence naming the sensors that fit; 10-bit DN (below 1100) and full 16-bit ranges are not flagged."""
    rng = np.random.default_rng(0)
    refl = write_raster(tmp_path / "refl.tif", rng.integers(200, 3001, (4, 64, 64)).astype(np.uint16))
    warnings = plausibility.check(str(refl), "bgrn")
    assert len(warnings) == 1
    assert warnings[0].startswith("The values stay below 10000 (the largest seen is 3000), which the "
                                  "'Generic 4-band B,G,R,NIR' sensor reads as 16-bit DN / 65535, at most "
                                  "0.05")
    assert "choose the planetscope or sentinel2 sensor" in warnings[0]
    assert plausibility.check(str(refl), "planetscope") == []
    full = write_raster(tmp_path / "full.tif", rng.integers(2000, 60000, (4, 64, 64)).astype(np.uint16))
    assert plausibility.check(str(full), "bgrn") == []
    tenbit = write_raster(tmp_path / "tenbit.tif", rng.integers(100, 1024, (4, 64, 64)).astype(np.uint16))
    assert not any("stay below 10000" in w for w in plausibility.check(str(tenbit), "bgrn"))
