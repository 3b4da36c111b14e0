"""ModelInput: band order, scaling, validity, grids (extent, working GSD, mask), bounded sampling, errors."""

from __future__ import annotations

import resource

import numpy as np
import pytest
from osgeo import gdal

from fbp_landcover.engine.errors import FbpError
from fbp_landcover.engine.io.raster import ModelInput, open_input
from fbp_landcover.engine.io.sensors import PROFILES, get_profile
from tests.rasters import write_raster

GT4 = (500000.0, 4.0, 0.0, 4000000.0, 0.0, -4.0)


def _gdal_read(path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


# ------------------------------------------------------------------------------------------- real rasters


def test_haiti_rgbn_reorders_bands_exactly(shared_data):
    path = shared_data / "haiti_rgbn_5m.tif"
    raw = _gdal_read(path).astype(np.float32)
    with open_input(str(path), PROFILES["rgbn"]) as inp:
        assert (inp.width, inp.height) == (515, 403) and inp.gsd == 5.0
        assert inp.geotransform == (792988.0, 5.0, 0.0, 2050382.0, 0.0, -5.0)
        x, valid = inp.read(0, 0, 515, 403)
    assert x.dtype == np.float32 and valid.all()  # no nodata declared
    for k, band in enumerate((4, 1, 2, 3)):
        np.testing.assert_array_equal(x[k], raw[band - 1] / np.float32(255))


def test_naip_nodata_mask_is_exact(shared_data):
    path = shared_data / "naip_nd_2009_rgbn_5m.tif"
    raw = _gdal_read(path)
    expected_valid = (raw != 0).all(axis=0)
    with open_input(path, get_profile("rgbn")) as inp:
        x, valid = inp.read(0, 0, inp.width, inp.height)
    np.testing.assert_array_equal(valid, expected_valid)
    np.testing.assert_array_equal(x[0], np.where(expected_valid, raw[3] / np.float32(255), 0))
    np.testing.assert_array_equal(x[3], np.where(expected_valid, raw[2] / np.float32(255), 0))


def test_slovenia_sentinel2_nir_is_b08(shared_data):
    path = shared_data / "slovenia_s2l1c_scene0_13band_10m.tif"
    raw = _gdal_read(path)
    with open_input(str(path), PROFILES["sentinel2"]) as inp:
        assert inp.scale == 1.0 and inp.offset == 0.0
        x, valid = inp.read(0, 0, 100, 101)
        info = inp.describe()
    np.testing.assert_array_equal(x[0], np.clip(raw[7], 0, 1))  # B08
    np.testing.assert_array_equal(x[1], np.clip(raw[3], 0, 1))  # B04
    np.testing.assert_array_equal(x[3], np.clip(raw[1], 0, 1))  # B02
    assert valid.all()
    assert info["epsg"] == 32633 and info["size"] == [100, 101] and info["nir_r_g_b_bands"] == [8, 4, 3, 2]
    assert info["bands"][7]["description"] == "B08" and info["bands"][0]["dtype"] == "Float32"
    assert info["profile"] == "sentinel2" and info["driver"] == "GTiff" and "0..1" in info["scaling"]


def test_bahamas_three_bands_refused(shared_data):
    with pytest.raises(FbpError, match=r"has 3 band\(s\), too few bands for the 'rgbn'"):
        open_input(str(shared_data / "bahamas_rgb_byte_300m.tif"), PROFILES["rgbn"])


def test_worldcover_windows_and_bounded_sample(shared_data, monkeypatch):
    path = str(shared_data / "worldcover_2021_N00E006_10m.tif")
    prof = get_profile("custom:nir=1,r=1,g=1,b=1")
    reads: list[tuple[int, int]] = []
    original = ModelInput._read_raw

    def counting(self, x, y, w, h):
        reads.append((w, h))
        return original(self, x, y, w, h)

    monkeypatch.setattr(ModelInput, "_read_raw", counting)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with open_input(path, prof) as inp:
        assert (inp.width, inp.height) == (36000, 36000) and inp.geographic and inp.epsg == 4326
        x, valid = inp.read(35900, 35950, 256, 256)  # boundless at the bottom-right corner
        assert x.shape == (4, 256, 256) and not valid[:, 100:].any() and not valid[50:, :].any()
        assert reads[-1] == (100, 50)
        reads.clear()
        px = inp.sample(50_000)
        again = inp.sample(50_000)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert px.shape == (4, 50_000) and px.dtype == np.float32
    np.testing.assert_array_equal(px, again)  # deterministic
    assert set(np.unique(np.round(px[0] * 255)).tolist()) <= {10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100}
    assert 0 < len(reads) <= 2 * 64 and all(w * h <= 256 * 256 for w, h in reads)
    assert grown_mib < 400  # the tile is 1.3 GB decoded


# ------------------------------------------------------------------------------------- generated rasters


def test_gaofen2_uint16_ten_bit_scaling(tmp_path):
    bgrn = np.array([100, 200, 300, 1100], np.uint16)[:, None, None] * np.ones((1, 2, 3), np.uint16)
    path = write_raster(tmp_path / "gf2.tif", bgrn)
    with open_input(path, PROFILES["gaofen2"]) as inp:
        assert inp.scale == 1023.0
        x, valid = inp.read(0, 0, 3, 2)
    assert valid.all()
    np.testing.assert_array_equal(x[:, 0, 0], np.array([1.0, 300 / 1023, 200 / 1023, 100 / 1023], np.float32))


def test_sentinel2_offset_from_metadata_and_forced(tmp_path):
    bands = np.zeros((12, 2, 2), np.uint16)
    bands[7], bands[3], bands[2], bands[1] = 3000, 1500, 500, 11000  # B08, B04, B03, B02
    plain = write_raster(tmp_path / "l2a.tif", bands)
    with open_input(plain, PROFILES["sentinel2"]) as inp:
        assert inp.offset == 0.0 and "sentinel2:offset=1000" in inp.scaling
        np.testing.assert_array_equal(inp.read(0, 0, 1, 1)[0][:, 0, 0], np.float32([0.3, 0.15, 0.05, 1.0]))
    tagged = write_raster(tmp_path / "l2a_pb0400.tif", bands)
    ds = gdal.Open(str(tagged), gdal.GA_Update)
    ds.SetMetadataItem("PROCESSING_BASELINE", "04.00")
    ds = None
    expected = np.float32([0.2, 0.05, 0.0, 1.0])  # (DN - 1000) / 10000, clipped: 500 -> 0, 11000 -> 1
    with open_input(tagged, PROFILES["sentinel2"]) as inp:
        assert inp.offset == 1000.0 and "04.00" in inp.scaling
        np.testing.assert_array_equal(inp.read(0, 0, 1, 1)[0][:, 0, 0], expected)
    with open_input(plain, get_profile("sentinel2:offset=1000")) as inp:
        np.testing.assert_array_equal(inp.read(0, 0, 1, 1)[0][:, 0, 0], expected)
    boa = write_raster(tmp_path / "l2a_boa.tif", bands)
    ds = gdal.Open(str(boa), gdal.GA_Update)
    ds.SetMetadataItem("BOA_ADD_OFFSET_B8", "-1000")
    ds = None
    with open_input(boa, PROFILES["sentinel2"]) as inp:
        assert inp.offset == 1000.0


def test_sentinel2_separate_band_files(tmp_path):
    values = {"02": 100, "03": 200, "04": 300, "08": 4000}
    files = [
        write_raster(tmp_path / f"T33TVM_B{b}_10m.tif", np.full((3, 4), values[b], np.uint16),
                     geotransform=(400000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0), epsg=32633)
        for b in ("08", "03", "02", "04")  # any order
    ]
    with open_input([str(f) for f in files], PROFILES["sentinel2"]) as inp:
        assert (inp.width, inp.height) == (4, 3)
        assert inp.geotransform == (400000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0)
        assert [p[-11:-8] for p in inp.paths] == ["B02", "B03", "B04", "B08"]
        x, valid = inp.read(0, 0, 4, 3)
        assert inp.describe()["driver"] == "VRT of band files"
    assert valid.all()
    np.testing.assert_array_equal(x[:, 1, 2], np.float32([0.4, 0.03, 0.02, 0.01]))


def test_sentinel2_band_files_must_share_crs_and_extent(tmp_path):
    """Band files from different tiles, crops or CRSs are refused naming the file; different pixel sizes
    over one extent are stacked at the finest with a note."""
    gt = (400000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0)

    def files(b08_gt=gt, b08_epsg=32633, b08_shape=(30, 40)):
        out = []
        for b in ("02", "03", "04", "08"):
            shape, g, e = (b08_shape, b08_gt, b08_epsg) if b == "08" else ((30, 40), gt, 32633)
            out.append(str(write_raster(tmp_path / f"T33TVM_B{b}_10m.tif", np.full(shape, 100, np.uint16),
                                        geotransform=g, epsg=e)))
        return out

    shifted = (400000.0 + 200.0, *gt[1:])  # 20 pixels east
    with pytest.raises(FbpError, match=r"cover different areas: .*B02_10m.tif spans x 400000..400400.*"
                                       r"B08_10m.tif spans x 400200..400600"):
        open_input(files(b08_gt=shifted), PROFILES["sentinel2"])
    with pytest.raises(FbpError, match=r"different coordinate systems: .*UTM zone 33N.*B08_10m.tif in "
                                       r"WGS 84 / UTM zone 34N"):
        open_input(files(b08_epsg=32634), PROFILES["sentinel2"])
    coarse = (400000.0, 20.0, 0.0, 5000000.0, 0.0, -20.0)  # B08 at 20 m over the same 400 x 300 m
    with open_input(files(b08_gt=coarse, b08_shape=(15, 20)), PROFILES["sentinel2"]) as inp:
        assert (inp.width, inp.height) == (40, 30)
        assert any("different pixel sizes (10 and 20)" in n for n in inp.notes)


def test_fbp8bit_cmyk_read_raw(tmp_path):
    data = np.stack([np.full((3, 5), v, np.uint8) for v in (180, 60, 90, 120)])  # NIR, R, G, B
    data[3, 0, 0] = 7
    path = write_raster(tmp_path / "GF2_PMS1__L1A0000189089-MSS1.tif", data,
                        options=["PHOTOMETRIC=CMYK", "INTERLEAVE=PIXEL"])
    naive = gdal.Open(str(path))
    assert naive.GetRasterBand(4).ReadAsArray()[1, 1] == 255  # GDAL's RGBA conversion
    naive = None
    with open_input(path, PROFILES["fbp8bit"]) as inp:
        x, valid = inp.read(0, 0, 5, 3)
    assert valid.all()
    np.testing.assert_array_equal(x[:, 1, 1], np.float32([180, 60, 90, 120]) / np.float32(255))
    assert x[3, 0, 0] == np.float32(7) / np.float32(255)


def test_nodata_and_nan_validity(tmp_path):
    data = np.full((4, 3, 4), 50, np.uint8)
    data[1, 0, 0] = 0  # nodata in band 2 only
    data[3, 2, 3] = 0
    path = write_raster(tmp_path / "nd.tif", data, nodata=0)
    with open_input(path, PROFILES["rgbn"]) as inp:
        x, valid = inp.read(0, 0, 4, 3)
    expected = np.ones((3, 4), bool)
    expected[0, 0] = expected[2, 3] = False
    np.testing.assert_array_equal(valid, expected)
    assert (x[:, ~expected] == 0).all() and (x[:, expected] == np.float32(50 / 255)).all()
    fdata = np.full((4, 2, 2), 0.25, np.float32)
    fdata[2, 1, 0] = np.nan
    fpath = write_raster(tmp_path / "nan.tif", fdata)
    with open_input(fpath, PROFILES["rgbn"]) as inp:
        x, valid = inp.read(0, 0, 2, 2)
    np.testing.assert_array_equal(valid, [[True, True], [False, True]])
    assert np.isfinite(x).all() and x[0, 0, 0] == np.float32(0.25)


def test_mask_on_another_grid(tmp_path):
    path = write_raster(tmp_path / "img.tif", np.full((4, 10, 20), 9, np.uint8), geotransform=GT4)
    mask = np.zeros((40, 60), np.uint8)
    mask[10:16, 10:18] = 1  # x in [500011, 500027), y in (3999979, 3999991]
    mpath = write_raster(tmp_path / "mask.tif", mask, geotransform=(499991.0, 2.0, 0.0, 4000011.0, 0.0, -2.0))
    with open_input(path, PROFILES["rgbn"], mask=str(mpath)) as inp:
        _, valid = inp.read(0, 0, 20, 10)
    expected = np.ones((10, 20), bool)
    expected[2:5, 3:7] = False
    np.testing.assert_array_equal(valid, expected)
    # a mask in another CRS (geographic) covering the whole image masks all of it
    geo = write_raster(tmp_path / "mask4326.tif", np.ones((10, 10), np.uint8),
                       geotransform=(116.0, 0.2, 0.0, 37.0, 0.0, -0.2), epsg=4326)
    with open_input(path, PROFILES["rgbn"], mask=str(geo)) as inp:
        assert not inp.read(0, 0, 20, 10)[1].any()


def test_extent_snaps_outward_to_the_grid(tmp_path):
    data = np.arange(4 * 10 * 20, dtype=np.uint16).reshape(4, 10, 20) % 1000
    path = write_raster(tmp_path / "img.tif", data, geotransform=GT4)
    for extent in [(500005.0, 3999971.0, 500030.0, 3999990.0), (500004.0, 3999968.0, 500032.0, 3999992.0)]:
        with open_input(path, PROFILES["bgrn"], extent=extent) as inp:
            assert (inp.width, inp.height) == (7, 6)
            assert inp.geotransform == (500004.0, 4.0, 0.0, 3999992.0, 0.0, -4.0)
            x, valid = inp.read(0, 0, 7, 6)
            assert valid.all() and not inp.read(7, 0, 1, 1)[1].any()  # outside the extent's window
        np.testing.assert_array_equal(x[0], data[3, 2:8, 1:8] / np.float32(65535))
    with open_input(path, PROFILES["bgrn"], extent=(499000.0, 3999000.0, 500010.0, 3999990.0)) as inp:
        assert (inp.width, inp.height) == (3, 8)
        assert inp.geotransform == (500000.0, 4.0, 0.0, 3999992.0, 0.0, -4.0)
    with pytest.raises(FbpError, match="does not intersect"):
        open_input(path, PROFILES["bgrn"], extent=(0.0, 0.0, 10.0, 10.0))


def test_working_gsd_resamples_to_an_exact_aligned_grid(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.integers(1, 10000, size=(4, 83, 101), dtype=np.uint16)
    path = write_raster(tmp_path / "ps.tif", data, geotransform=(300000.0, 3.0, 0.0, 5000000.0, 0.0, -3.0))
    with open_input(path, PROFILES["planetscope"]) as inp:  # the profile's default: 4 m
        assert (inp.width, inp.height) == (76, 63)
        assert inp.geotransform == (300000.0, 4.0, 0.0, 5000000.0, 0.0, -4.0) and inp.gsd == 4.0
        x, valid = inp.read(0, 0, 76, 63)
        assert inp.describe()["resampled"] == "nearest"
    cols = (np.arange(76) * 4 + 2) // 3  # nearest source pixel of each 4 m pixel centre
    rows = (np.arange(62) * 4 + 2) // 3
    np.testing.assert_array_equal(x[0, :62], data[3][rows][:, cols] / np.float32(10000))
    assert valid[:62].all() and not valid[62].any()  # last row's centre (250 m) lies outside 249 m
    with open_input(path, PROFILES["planetscope"], working_gsd=3.0) as inp:
        assert (inp.width, inp.height) == (101, 83) and inp.describe()["resampled"] is None


def test_geographic_raster(tmp_path):
    path = write_raster(tmp_path / "geo.tif", np.full((4, 6, 8), 100, np.uint8),
                        geotransform=(10.0, 0.001, 0.0, 45.0, 0.0, -0.001), epsg=4326)
    with open_input(path, PROFILES["rgbn"]) as inp:
        assert inp.geographic and inp.geotransform == (10.0, 0.001, 0.0, 45.0, 0.0, -0.001)
        assert 75 < inp.gsd < 100  # metres, approximate
        x, valid = inp.read(0, 0, 8, 6)
        assert valid.all() and (x == np.float32(100 / 255)).all()
    with pytest.raises(FbpError, match="geographic CRS.*reproject"):
        open_input(path, PROFILES["rgbn"], working_gsd=4.0)
    with open_input(path, PROFILES["planetscope"]) as inp:  # default 4 m ignored, and said so
        assert (inp.width, inp.height) == (8, 6) and "ignored" in inp.notes[0]


def test_boundless_reads_at_edges(tmp_path):
    data = (np.arange(4 * 4 * 5, dtype=np.uint8).reshape(4, 4, 5) + 1)
    path = write_raster(tmp_path / "small.tif", data)
    with open_input(path, PROFILES["bgrn"]) as inp:
        x, valid = inp.read(-3, -2, 10, 8)
        far, far_valid = inp.read(100, 100, 4, 4)
    assert x.shape == (4, 8, 10) and valid.sum() == 20 and valid[2:6, 3:8].all()
    np.testing.assert_array_equal(x[0, 2:6, 3:8], data[3] / np.float32(255))
    assert (x[:, ~valid] == 0).all()
    assert not far.any() and not far_valid.any()


def test_one_pixel_raster(tmp_path):
    path = write_raster(tmp_path / "one.tif", np.array([[[10]], [[20]], [[30]], [[40]]], np.uint8))
    with open_input(path, PROFILES["rgbn"]) as inp:
        assert (inp.width, inp.height) == (1, 1)
        np.testing.assert_array_equal(inp.sample(100)[:, 0], np.float32([40, 10, 20, 30]) / np.float32(255))


def test_file_errors(tmp_path):
    with pytest.raises(FbpError, match=r"missing\.tif does not exist"):
        open_input(str(tmp_path / "missing.tif"), PROFILES["rgbn"])
    txt = tmp_path / "readme.tif"
    txt.write_text("hello")
    with pytest.raises(FbpError, match=r"readme\.tif is not a raster GDAL could read"):
        open_input(str(txt), PROFILES["rgbn"])
    path = write_raster(tmp_path / "four.tif", np.ones((4, 2, 2), np.uint8))
    with pytest.raises(FbpError, match="takes NIR from band 6"):
        open_input(path, get_profile("custom:nir=6,r=1,g=2,b=3"))
    with pytest.raises(FbpError, match="too few bands for the 'planetscope'"):
        open_input(write_raster(tmp_path / "two.tif", np.ones((2, 2, 2), np.uint16)), PROFILES["planetscope"])


def test_unreferenced_fbp8bit_file(tmp_path):
    """FBP's 8-bit files carry no geotransform: read at the profile's 4 m, never resampled."""
    path = str(tmp_path / "fbp_nogeo.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 6, 4, 4, gdal.GDT_Byte, ["PHOTOMETRIC=CMYK"])
    for b in range(4):
        ds.GetRasterBand(b + 1).WriteArray(np.full((4, 6), 10 * (b + 1), np.uint8))
    ds = None
    with open_input(path, PROFILES["fbp8bit"]) as inp:
        assert not inp.georeferenced and inp.gsd == 4.0 and (inp.width, inp.height) == (6, 4)
        np.testing.assert_array_equal(inp.read(0, 0, 1, 1)[0][:, 0, 0], np.float32([10, 20, 30,
                                                                                    40]) / np.float32(255))
    with pytest.raises(FbpError, match="has no georeferencing, so it cannot be resampled"):
        open_input(path, PROFILES["fbp8bit"], working_gsd=8.0)
