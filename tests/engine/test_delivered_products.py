"""PlanetScope scenes with their UDM2 and images placed by RPCs (Gaofen L1A), on the fixtures in
../shared/data/products: masks read as documented, bands and coefficients from the metadata, RPC images
where GDAL's RPC transformer puts them, memory flat through the warped VRT."""

from __future__ import annotations

import resource
import shutil

import numpy as np
import pytest
from osgeo import gdal, osr

from fbp_landcover.engine.errors import FbpError
from fbp_landcover.engine.io.delivered import recognise
from fbp_landcover.engine.io.raster import open_input
from fbp_landcover.engine.io.sensors import choose
from tests.delivered_fixtures import SID, UDM2, planet_scene

RPC = "rpc/gf_style_derived/md_dg_l1a"


def test_udm2_found_beside_the_image_and_read_as_documented(products, tmp_path):
    img = planet_scene(products, tmp_path, f"{SID}_3B_AnalyticMS_SR_clip.tif")
    p = recognise(str(img))
    assert p.kind == "PlanetScope AnalyticMS_SR" and p.profile.band_order == {0: (4, 3, 2, 1)}
    assert "UDM2" in p.mask_note and [m.band for m in p.masks] == [1, 8]
    assert (p.facts["date"], p.facts["instrument"]) == ("2015-11-19T02:57:40", "PS2")
    udm = gdal.Open(str(products / UDM2)).ReadAsArray()
    assert udm.shape == (8, 1352, 1578)
    assert int((udm[3] == 1).sum()) == 11930 and int((udm[7] & 1).sum()) == 37381  # the README's counts
    prof, _ = choose(str(img))
    with open_input(str(img), prof, working_gsd=3.0) as inp:  # the native grid (the profile works at 4 m)
        masked = inp.masked(0, 0, inp.width, inp.height)
        _, valid = inp.read(0, 0, inp.width, inp.height)
        share = inp.mask_summary()["masked_share_estimate"]
    expected = (udm[0] == 0) | (udm[7] != 0)
    np.testing.assert_array_equal(masked, expected)
    np.testing.assert_array_equal(valid, ~expected)
    assert expected.sum() >= 37381 and share == pytest.approx(expected.mean(), abs=0.05)


def test_planetscope_toa_radiance_uses_the_xml_reflectance_coefficients(products, tmp_path):
    img = planet_scene(products, tmp_path, f"{SID}_3B_AnalyticMS_clip.tif", dn=10000)
    prof, reason = choose(str(img))
    assert "PlanetScope AnalyticMS scene" in reason
    with open_input(str(img), prof, mask="none") as inp:
        x, valid = inp.read(0, 0, 2, 2)
    coef = {1: 2.4368314353231946e-05, 2: 2.6138170775695546e-05, 3: 2.894169710055483e-05,
            4: 4.433218315124758e-05}
    dn = {b: 10000 + 100 * (b - 1) for b in coef}
    np.testing.assert_allclose(x[:, 0, 0], [dn[b] * coef[b] for b in (4, 3, 2, 1)], rtol=1e-6)
    assert valid.all()


def test_planetscope_8_band_bands_by_their_names(products, tmp_path):
    names = ["coastal_blue", "blue", "green_i", "green", "yellow", "red", "rededge", "nir"]
    img = planet_scene(products, tmp_path, f"{SID}_3B_AnalyticMS_SR_8b_clip.tif", bands=8,
                              descriptions=names)
    p = recognise(str(img))
    assert p.profile.band_order == {0: (8, 6, 4, 2)} and p.facts["band_names_from"] == "the file's band names"


def test_legacy_udm_and_no_mask(products, tmp_path):
    img = planet_scene(products, tmp_path, f"{SID}_3B_AnalyticMS_SR_clip.tif")
    (tmp_path / UDM2.split("/")[1]).unlink()
    assert recognise(str(img)).masks == []
    udm = gdal.Open(str(products / UDM2))
    gdal.Translate(str(tmp_path / f"{SID}_3B_AnalyticMS_DN_udm_clip.tif"), udm, bandList=[8])
    p = recognise(str(img))
    assert "legacy UDM" in p.mask_note and [m.band for m in p.masks] == [1]


# ------------------------------------------------------------------------------------------------ RPC


@pytest.mark.parametrize("height, west_north", [(0.0, (12.5631370, 41.8906034)),
                                                (500.0, (12.5625008, 41.8894780))])
def test_rpc_footprint_where_gdal_puts_it(products, height, west_north):
    p = recognise(str(products / f"{RPC}.tiff"), rpc_height=height)
    west, _south, _east, north = p.facts["bounds_lon_lat"]
    pixel = 1.7154e-05  # gdalwarp -rpc -t_srs EPSG:4326 pixel size (degrees)
    assert abs(west - west_north[0]) < pixel and abs(north - west_north[1]) < pixel
    assert p.facts["utm_zone_epsg"] == 32633 and p.facts["geometry"] == "RPC"
    assert p.facts["rpc_source"].endswith("md_dg_l1a.rpb")


def test_rpc_pixels_land_where_the_transformer_says(products):
    path = str(products / f"{RPC}.tiff")
    src = gdal.Open(path)
    tr = gdal.Transformer(src, None, ["METHOD=RPC", "RPC_HEIGHT=0"])
    with open_input(path, choose(path, "custom:nir=1,r=1,g=2,b=3", rpc_height=0)[0], rpc_height=0) as inp:
        gt, wkt = inp.geotransform, inp.projection
        utm = osr.SpatialReference(wkt=wkt)
        utm.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        wgs = osr.SpatialReference()
        wgs.ImportFromEPSG(4326)
        wgs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        ct = osr.CoordinateTransformation(wgs, utm)
        raw = src.ReadAsArray()
        for col, row in [(5.5, 5.5), (25.5, 10.5), (44.5, 40.5), (10.5, 30.5)]:
            lon, lat, _ = tr.TransformPoint(0, col, row, 0)[1]
            x, y, _ = ct.TransformPoint(lon, lat)
            c, r = int((x - gt[0]) / gt[1]), int((y - gt[3]) / gt[5])
            vals, valid = inp.read(c, r, 1, 1)
            assert valid[0, 0]
            # nearest neighbour: the warped pixel holds the source pixel or a neighbour within one pixel
            ring = raw[0, int(row) - 1:int(row) + 2, int(col) - 1:int(col) + 2]
            assert round(float(vals[0, 0, 0]) * 255) in set(ring.ravel().tolist())


def test_geotransform_and_rpcs_which_wins(products, tmp_path):
    md_dg = recognise(str(products / "rpc/gdal_autotest/md_dg.tif"))  # geotransform in Brazil, RPCs over Rome
    assert md_dg.facts["geometry"] == "RPC" and "RPCs win" in md_dg.notes[0]
    ortho = tmp_path / "ortho.tif"  # a geotransform that agrees with its RPCs (an orthorectified product
    gdal.Translate(str(ortho), str(products / f"{RPC}.tiff"))  # that kept them): the geotransform wins
    src = gdal.Open(str(products / f"{RPC}.tiff"))
    tr = gdal.Transformer(src, None, ["METHOD=RPC", "RPC_HEIGHT=95"])
    corners = ((0, 0), (50, 0), (0, 50))
    (x0, y0, _), (x1, _, _), (_, y2, _) = (tr.TransformPoint(0, c, r, 0)[1] for c, r in corners)
    ds = gdal.Open(str(ortho), gdal.GA_Update)
    ds.SetGeoTransform((x0, (x1 - x0) / 50, 0.0, y0, 0.0, (y2 - y0) / 50))
    ds.SetProjection(osr.SRS_WKT_WGS84_LAT_LONG)
    ds = None
    assert gdal.Open(str(ortho)).GetMetadata("RPC")
    assert recognise(str(ortho)) is None


def test_other_rpc_forms(products):
    ge = recognise(str(products / "rpc/gdal_autotest/md_ge_rgb_0010000.tif"))
    assert ge.facts["rpc_source"].endswith("_rpc.txt")
    assert ge.facts["bounds_lon_lat"][0] == pytest.approx(2.262, abs=0.001)
    assert ge.facts["bounds_lon_lat"][3] == pytest.approx(48.911, abs=0.001)
    tags = recognise(str(products / "rpc/gdal_autotest/byte_rpc.tif"), rpc_height=0)
    assert tags.facts["rpc_source"] == "RPC tags in the file" and tags.facts["utm_zone_epsg"] == 32755
    assert tags.facts["bounds_lon_lat"][0] == pytest.approx(147.175, abs=0.001)
    assert tags.facts["bounds_lon_lat"][3] == pytest.approx(-42.789, abs=0.001)


def _gf2_scene(products, folder, size=None):
    """A GF-2 L1A-named 4-band multispectral file placed by the fixture's .rpb (pixels from md_dg_l1a)."""
    name = folder / "GF2_PMS1_E12.6_N41.9_20160328_L1A0001492006-MSS1.tiff"
    opts = {"bandList": [1, 2, 3, 3], "outputType": gdal.GDT_UInt16}
    if size:
        opts.update(width=size, height=size, creationOptions=["TILED=YES", "COMPRESS=DEFLATE"])
    gdal.Translate(str(name), str(products / f"{RPC}.tiff"), **opts)
    for f in folder.glob("*.aux.xml"):
        f.unlink()
    shutil.copy(products / f"{RPC}.rpb", name.with_suffix(".rpb"))
    return name


def test_gaofen_name_selects_the_profile_and_the_grid(products, tmp_path):
    img = _gf2_scene(products, tmp_path)
    prof, reason = choose(str(img))
    assert prof.name == "gaofen2" and "GF2 PMS1 MSS1" in reason and "RPCs" in reason
    with open_input(str(img), prof) as inp:
        assert inp.gsd == 4.0 and inp.epsg == 32633 and inp.geotransform[1] == 4.0
        assert inp.describe()["geometry"] == "RPC"
    pan = tmp_path / "GF2_PMS1_E12.6_N41.9_20160328_L1A0001492006-PAN1.tiff"
    shutil.copy(img, pan)
    shutil.copy(img.with_suffix(".rpb"), pan.with_suffix(".rpb"))
    with pytest.raises(FbpError, match="panchromatic"):
        choose(str(pan))


def test_rpc_image_mapped_end_to_end(products, tmp_path):
    from fbp_landcover.engine.mapping import MapRequest, map_landcover
    from tests.models import tiny_checkpoint

    img = _gf2_scene(products, tmp_path)
    model = tiny_checkpoint(tmp_path / "tiny.fbpmodel")
    res = map_landcover(MapRequest(image=str(img), output=str(tmp_path / "map.tif"), model=str(model),
                                   areas=str(tmp_path / "areas.csv")))
    out = gdal.Open(res.output)
    with open_input(str(img), choose(str(img))[0]) as inp:
        assert out.GetGeoTransform() == inp.geotransform
        assert (out.RasterXSize, out.RasterYSize) == inp.grid[:2]
        _, valid = inp.read(0, 0, inp.width, inp.height)
    data = out.ReadAsArray()
    np.testing.assert_array_equal(data > 0, valid)  # outside the image's footprint: nodata
    assert osr.SpatialReference(wkt=out.GetProjection()).GetAuthorityCode(None) == "32633"
    md = out.GetMetadata()
    assert '"geometry": "RPC"' in md["FBP_PRODUCT"] and "RPC_HEIGHT" not in md["FBP_PRODUCT"]
    assert "HEIGHT_OFF" in md["FBP_PRODUCT"]


def test_rpc_reading_memory_stays_flat(products, tmp_path):
    img = _gf2_scene(products, tmp_path, size=6000)  # 6000 x 6000 x 4 x 16 bit = 275 MB decoded
    prof = choose(str(img))[0]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open_input(str(img), prof) as inp:
        assert inp.width > 1000
        for k in range(8):
            inp.read(k * 128, k * 128, 256, 256)
        inp.sample(20_000)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 150
