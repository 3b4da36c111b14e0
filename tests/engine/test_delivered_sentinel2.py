"""Sentinel-2 products as delivered (the fixtures in ../shared/data/products/sentinel2): the subdataset
chosen, bands by name, offsets applied, the zip like the folder, the 02.08 TCI quirk, SCL as a mask."""

from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal

from fbp_landcover.engine.errors import FbpError
from fbp_landcover.engine.io.delivered import recognise
from fbp_landcover.engine.io.delivered.masks import SCL_RULES
from fbp_landcover.engine.io.raster import open_input
from fbp_landcover.engine.io.sensors import choose
from tests.delivered_fixtures import L1C, L2A, L2A_0208, L2A_ZIP, band_file, copy_product, write_window


def test_l2a_folder_10m_subdataset_bands_by_name_and_xml_offset(products):
    p = recognise(str(products / L2A))
    assert p.kind == "Sentinel-2 L2A"
    assert p.dataset.endswith("/MTD_MSIL2A.xml:10m:EPSG_32634") and p.dataset.startswith("SENTINEL2_L2A:")
    # the 10m subdataset is B4, B3, B2, B8: NIR,R,G,B = bands 4, 1, 2, 3 found by name
    assert p.profile.band_order == {0: (4, 1, 2, 3)}
    assert p.facts["offset"] == -1000.0 and "XML" in p.facts["offset_source"]  # GDAL 3.6 does not expose it
    assert p.facts["quantification"] == 10000.0 and p.invalid_values == (0.0, 65535.0)
    facts = (p.facts["tile"], p.facts["utm_zone_epsg"], p.facts["processing_baseline"])
    assert facts == ("T34UCF", 32634, "05.09")
    assert p.facts["date"] == "2023-08-23T09:55:59"
    assert [m.band for m in p.masks] == [9]  # SCL is band 9 of the 20m subdataset
    assert p.masks[0].dataset.endswith(":20m:EPSG_32634")


def test_zip_and_xml_open_like_the_folder(products):
    folder = recognise(str(products / L2A))
    zipped = recognise(str(products / L2A_ZIP))
    xml = recognise(str(products / L2A / "MTD_MSIL2A.xml"))
    assert "/vsizip/" in zipped.dataset and zipped.dataset.endswith(".SAFE/MTD_MSIL2A.xml:10m:EPSG_32634")
    for p in (zipped, xml):
        assert p.profile.band_order == folder.profile.band_order
        assert p.facts["offset"] == folder.facts["offset"] and p.invalid_values == folder.invalid_values
        assert [m.band for m in p.masks] == [9]
    a, b = gdal.Open(folder.dataset), gdal.Open(zipped.dataset)
    assert a.GetGeoTransform() == b.GetGeoTransform() == (300000.0, 10.0, 0.0, 6100020.0, 0.0, -10.0)


def test_l1c_radiometric_offset_and_msk_classi(products):
    p = recognise(str(products / L1C))
    assert p.kind == "Sentinel-2 L1C" and p.profile.band_order == {0: (4, 1, 2, 3)}
    assert p.facts["offset"] == -1000.0 and "RADIO_ADD_OFFSET" in p.facts["offset_source"]
    assert [(m.band, "MSK_CLASSI_B00" in m.dataset) for m in p.masks] == [(1, True), (2, True)]
    assert "MSK_CLASSI_B00 found" in p.mask_note


def test_baseline_0208_no_offset_and_one_band_tci_survived(products):
    tci = gdal.Open(f"SENTINEL2_L2A:{products / L2A_0208}/MTD_MSIL2A.xml:TCI:EPSG_32634")
    with pytest.raises(RuntimeError):  # the quirk: GDAL announces 3 TCI bands, the file has one
        tci.GetRasterBand(2).ReadAsArray(0, 0, 2, 2)
    prof, reason = choose(str(products / L2A_0208))
    assert "baseline 02.08" in reason
    with open_input(str(products / L2A_0208), prof, mask="none") as inp:
        assert inp.offset == 0.0 and inp.scale == 10000.0
        assert inp.bands == (4, 1, 2, 3)
        x, valid = inp.read(0, 0, 8, 8)  # the 10m bands read; all DN 0 = no data
        assert not valid.any()
        info = inp.describe()
    assert any("SATURATED special value 6" in n for n in info["notes"])


def test_offset_applied_to_values_fails_if_ignored(products, tmp_path):
    safe = copy_product(products, L2A, tmp_path)
    for band, dn in (("B08", 4000), ("B04", 3000), ("B03", 2500), ("B02", 2000)):
        write_window(band_file(safe, f"*_{band}_10m.jp2"), np.full((16, 16), dn, np.uint16))
    write_window(band_file(safe, "*_SCL_20m.jp2"), np.full((8, 8), 4, np.uint8))  # vegetation: clear
    prof, _ = choose(str(safe))
    with open_input(str(safe), prof) as inp:
        x, valid = inp.read(0, 0, 16, 16)
        assert inp.offset == 1000.0
        assert "(DN -1000) / 10000" in inp.scaling
    assert valid.all()
    # (DN - 1000) / 10000; ignoring the offset would give 0.4, 0.3, 0.25, 0.2
    np.testing.assert_allclose(x[:, 0, 0], [0.3, 0.2, 0.15, 0.1], atol=1e-7)


def test_saturated_and_nodata_dn_are_invalid(products, tmp_path):
    safe = copy_product(products, L2A, tmp_path)
    b8 = np.full((4, 4), 4000, np.uint16)
    b8[1, 1], b8[2, 2] = 65535, 0
    write_window(band_file(safe, "*_B08_10m.jp2"), b8)
    for band in ("B04", "B03", "B02"):
        write_window(band_file(safe, f"*_{band}_10m.jp2"), np.full((4, 4), 3000, np.uint16))
    prof, _ = choose(str(safe))
    with open_input(str(safe), prof, mask="none") as inp:
        _, valid = inp.read(0, 0, 4, 4)
    expected = np.ones((4, 4), bool)
    expected[1, 1] = expected[2, 2] = False
    np.testing.assert_array_equal(valid, expected)


def test_scl_classes_masked_by_the_default_rule_nearest_to_10m(products, tmp_path):
    safe = copy_product(products, L2A, tmp_path)
    scl = np.arange(12, dtype=np.uint8).reshape(3, 4)  # classes 0..11 on 20 m pixels
    write_window(band_file(safe, "*_SCL_20m.jp2"), scl)
    for band in ("B08", "B04", "B03", "B02"):
        write_window(band_file(safe, f"*_{band}_10m.jp2"), np.full((6, 8), 3000, np.uint16))
    prof, _ = choose(str(safe))
    with open_input(str(safe), prof) as inp:
        masked = inp.masked(0, 0, 8, 6)
        _, valid = inp.read(0, 0, 8, 6)
        summary = inp.mask_summary(estimate=False)
    expected = np.isin(np.repeat(np.repeat(scl, 2, 0), 2, 1), SCL_RULES["default"])
    np.testing.assert_array_equal(masked, expected)
    np.testing.assert_array_equal(valid, ~expected)
    assert set(SCL_RULES["default"]) == {0, 1, 3, 8, 9, 10}
    assert "CLOUD_SHADOW" in summary["used"][0] and "THIN_CIRRUS" in summary["used"][0]
    with open_input(str(safe), prof, mask="none") as inp:
        assert inp.read(0, 0, 8, 6)[1].all()


def test_subdataset_name_given_and_wrong_resolution(products):
    sub = f"SENTINEL2_L2A:{products / L2A}/MTD_MSIL2A.xml:10m:EPSG_32634"
    assert recognise(sub).profile.band_order == {0: (4, 1, 2, 3)}
    with pytest.raises(FbpError, match="20m subdataset"):
        recognise(sub.replace(":10m:", ":20m:"))
    with pytest.raises(FbpError, match="no 10 m subdataset in EPSG:32633"):
        recognise(sub.replace("EPSG_32634", "EPSG_32633"))


def test_user_mask_combines_with_scl(products, tmp_path):
    safe = copy_product(products, L2A, tmp_path)
    write_window(band_file(safe, "*_SCL_20m.jp2"), np.array([[4, 9]], np.uint8))  # clear, cloud high
    for band in ("B08", "B04", "B03", "B02"):
        write_window(band_file(safe, f"*_{band}_10m.jp2"), np.full((2, 4), 3000, np.uint16))
    user = np.zeros((2, 4), np.uint8)
    user[0, 0] = 1
    from tests.rasters import write_raster

    gt = (300000.0, 10.0, 0.0, 6100020.0, 0.0, -10.0)
    mask = write_raster(tmp_path / "user.tif", user, geotransform=gt, epsg=32634)
    prof, _ = choose(str(safe))
    with open_input(str(safe), prof, mask=str(mask)) as inp:
        masked = inp.masked(0, 0, 4, 2)
        assert len(inp.mask_summary(estimate=False)["used"]) == 2
    np.testing.assert_array_equal(masked, [[True, False, True, True], [False, False, True, True]])
