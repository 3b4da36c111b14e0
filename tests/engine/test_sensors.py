"""Sensor profiles, custom band mappings, scaling rules and auto-detection."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal

from fbp_landcover.engine.errors import FbpError
from fbp_landcover.engine.io.sensors import PROFILES, detect, get_profile, s2_band_name
from tests.rasters import write_raster


def test_profiles_band_orders_and_gsd():
    assert PROFILES["gaofen2"].band_order == {4: (4, 3, 2, 1)} and PROFILES["gaofen2"].gsd == 4.0
    assert PROFILES["gaofen1"].band_order == {4: (4, 3, 2, 1)} and PROFILES["gaofen1"].gsd == 8.0
    ps = PROFILES["planetscope"]
    assert ps.band_order == {4: (4, 3, 2, 1), 8: (8, 6, 4, 2)} and ps.gsd == 3.0 and ps.working_gsd == 4.0
    s2 = PROFILES["sentinel2"]
    assert s2.band_order == {13: (8, 4, 3, 2), 12: (8, 4, 3, 2), 4: (4, 3, 2, 1)} and s2.gsd == 10.0
    assert PROFILES["fbp8bit"].band_order == {4: (1, 2, 3, 4)} and PROFILES["fbp8bit"].raw_gtiff
    assert PROFILES["rgbn"].band_order == {4: (4, 1, 2, 3)}
    assert PROFILES["bgrn"].band_order == {4: (4, 3, 2, 1)}
    for name, prof in PROFILES.items():
        assert get_profile(name) is prof
        assert get_profile(name.upper()) is prof


def test_custom_mapping_and_overrides():
    p = get_profile("custom:nir=4,r=1,g=2,b=3,scale=4095,offset=10,gsd=5")
    assert p.name == "custom" and p.band_order == {0: (4, 1, 2, 3)}
    assert (p.scale, p.offset, p.gsd) == (4095.0, 10.0, 5.0)
    assert p.bands_for(7) == (4, 1, 2, 3)
    assert get_profile("custom:nir=1,r=1,g=1,b=1").bands_for(1) == (1, 1, 1, 1)  # a band may repeat
    assert get_profile(p.label) == p
    s2 = get_profile("sentinel2:offset=1000")
    assert s2.offset == 1000.0 and not s2.offset_from_metadata
    assert s2.band_order == PROFILES["sentinel2"].band_order


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("landsat", "Unknown sensor"),
        ("custom:nir=4,r=1,g=2", "lacks b"),
        ("custom:nir=0,r=1,g=2,b=3", "nir='0'"),
        ("custom:nir=4,r=1,g=2,b=3,scale=abc", "not a number"),
        ("custom:nir=4,r=1,g=2,b=3,scale=0", "must be positive"),
        ("custom:nir=4,r=1,g=2,b=3,gamma=2", "unknown key 'gamma'"),
        ("custom:nir4", "not key=value"),
    ],
)
def test_get_profile_errors(text, fragment):
    with pytest.raises(FbpError, match=fragment):
        get_profile(text)


def test_bands_for_errors():
    with pytest.raises(FbpError, match=r"x\.tif has 3 band\(s\), too few bands for the 'rgbn'"):
        PROFILES["rgbn"].bands_for(3, "x.tif")
    with pytest.raises(FbpError, match="expects 4 or 8"):
        PROFILES["planetscope"].bands_for(5, "x.tif")
    with pytest.raises(FbpError, match="takes NIR from band 5"):
        get_profile("custom:nir=5,r=1,g=2,b=3").bands_for(4, "x.tif")


def test_resolve_scale_rules():
    assert PROFILES["rgbn"].resolve_scale("uint8")[0] == 255.0
    assert PROFILES["gaofen2"].resolve_scale("uint16")[0] == 1023.0
    assert PROFILES["planetscope"].resolve_scale("uint16")[0] == 10000.0
    assert PROFILES["sentinel2"].resolve_scale("uint16")[0] == 10000.0
    assert PROFILES["bgrn"].resolve_scale("uint16")[0] == 65535.0
    assert PROFILES["rgbn"].resolve_scale("int16")[0] == 10000.0
    assert PROFILES["sentinel2"].resolve_scale("float32", 0.9)[0] == 1.0
    assert PROFILES["sentinel2"].resolve_scale("float32", 4000.0)[0] == 10000.0
    assert get_profile("custom:nir=1,r=1,g=1,b=1,scale=7").resolve_scale("uint8")[0] == 7.0
    with pytest.raises(FbpError, match="up to 3000"):
        PROFILES["rgbn"].resolve_scale("float32", 3000.0, "f.tif")
    with pytest.raises(FbpError, match="uint32"):
        PROFILES["rgbn"].resolve_scale("uint32", None, "f.tif")


def test_s2_band_name():
    assert s2_band_name("T33TVM_20220101T101010_B08_10m.jp2") == "08"
    assert s2_band_name("/a/B02.tif") == "02"
    assert s2_band_name("scene_B8A.tif") == "8A"
    assert s2_band_name("naip_rgbn.tif") is None


def test_detect_real_rasters(shared_data):
    prof, reason = detect(shared_data / "haiti_rgbn_5m.tif")
    assert prof.name == "rgbn" and "Red, Green, Blue" in reason
    prof, reason = detect(str(shared_data / "slovenia_s2l1c_scene0_13band_10m.tif"))
    assert prof.name == "sentinel2" and "13 bands" in reason and "L1C" in reason
    three = r"has 3 band\(s\) \(band 1 Red, band 2 Green, band 3 Blue\).*NIR, R, G and B"
    with pytest.raises(FbpError, match=three):
        detect(shared_data / "bahamas_rgb_byte_300m.tif")
    # NAIP's bands say Gray, Undefined...: ambiguous, so the user is asked to choose
    with pytest.raises(FbpError, match="Cannot tell which sensor.*rgbn.*custom:nir="):
        detect(shared_data / "naip_nd_2009_rgbn_5m.tif")
    with pytest.raises(FbpError, match=r"has 1 band\(s\) \(band 1 Palette\)"):
        detect(shared_data / "worldcover_2021_N00E006_10m.tif")


def test_detect_generated(tmp_path):
    l2a = write_raster(tmp_path / "l2a.tif", np.ones((12, 3, 3), np.uint16))
    prof, reason = detect(l2a)
    assert prof.name == "sentinel2" and "12 bands" in reason and "L2A" in reason
    ps = write_raster(tmp_path / "ps8.tif", np.ones((8, 3, 3), np.uint16))
    assert detect(ps)[0].name == "planetscope"
    gf = write_raster(tmp_path / "gf2.tif", np.ones((4, 3, 3), np.uint16))
    ds = gdal.Open(str(gf), gdal.GA_Update)
    ds.SetMetadataItem("SATELLITEID", "GF2")
    ds = None
    prof, reason = detect(gf)
    assert prof.name == "gaofen2" and "GF2" in reason
    cmyk = write_raster(tmp_path / "fbp.tif", np.ones((4, 3, 3), np.uint8), options=["PHOTOMETRIC=CMYK"])
    prof, reason = detect(cmyk)
    assert prof.name == "fbp8bit" and "CMYK" in reason
    plain = write_raster(tmp_path / "plain.tif", np.ones((4, 3, 3), np.uint16))
    with pytest.raises(FbpError, match="Cannot tell which sensor"):
        detect(plain)


def test_detect_band_files(tmp_path):
    files = [
        write_raster(tmp_path / f"T33_B{b}_10m.tif", np.ones((3, 3), np.uint16))
        for b in ("08", "02", "04", "03")
    ]
    prof, reason = detect(files)
    assert prof.name == "sentinel2" and "B08" in reason
    with pytest.raises(FbpError, match="not the four Sentinel-2 files"):
        detect(files[:3] + [write_raster(tmp_path / "other.tif", np.ones((3, 3), np.uint16))])


def test_detect_file_errors(tmp_path):
    with pytest.raises(FbpError, match="does not exist"):
        detect(tmp_path / "missing.tif")
    txt = tmp_path / "notes.tif"
    txt.write_text("not a raster")
    with pytest.raises(FbpError, match=r"notes\.tif is not a raster GDAL could read"):
        detect(txt)


def test_the_mapping_example_follows_the_band_descriptions(shared_data):
    from fbp_landcover.engine.io.sensors import mapping_example

    assert mapping_example(str(shared_data / "slovenia_s2l1c_scene0_13band_10m.tif")) == "nir=8,r=4,g=3,b=2"
    assert mapping_example(str(shared_data / "haiti_rgbn_5m.tif")) == "nir=4,r=1,g=2,b=3"  # Red, Green, Blue
    # bands tagged Gray/Undefined say nothing: the first four in B,G,R,NIR order
    assert mapping_example(str(shared_data / "naip_nd_2020_rgbn_5m.tif")) == "nir=4,r=3,g=2,b=1"
