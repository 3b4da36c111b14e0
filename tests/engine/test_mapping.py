"""Mapping end to end: real rasters, exact georeferencing and styling, and bad input that loses nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from fbp_landcover.engine import classes
from fbp_landcover.engine.errors import CancelledError, FbpError
from fbp_landcover.engine.mapping import MapRequest, map_landcover
from tests.models import tiny_checkpoint
from tests.rasters import file_digest, random_scene, write_raster

gdal.UseExceptions()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return str(tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.fbpmodel"))


def assert_styled_map(path: Path, like: str | Path):
    out, src = gdal.Open(str(path)), gdal.Open(str(like))
    assert (out.RasterXSize, out.RasterYSize) == (src.RasterXSize, src.RasterYSize)
    assert out.GetGeoTransform() == src.GetGeoTransform()
    assert out.GetSpatialRef().IsSame(src.GetSpatialRef())
    band = out.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Byte and band.GetNoDataValue() == 0
    table = band.GetColorTable()
    assert [table.GetColorEntry(i)[:3] for i in range(25)] == [c.rgb for c in classes.CLASSES]
    assert band.GetCategoryNames() == classes.names()
    assert band.GetOverviewCount() >= 1 or max(out.RasterXSize, out.RasterYSize) < 512
    data = band.ReadAsArray()
    assert data.max() <= 24
    return out, data


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name or p.name.startswith(".fbp"))


def test_naip_rgbn_maps_with_exact_grid_style_and_outputs(shared_data, model, tmp_path):
    src = shared_data / "naip_nd_2020_rgbn_5m.tif"
    digest = file_digest(src)
    res = map_landcover(MapRequest(image=str(src), output=str(tmp_path / "naip.tif"), model=model,
                                   sensor="rgbn",
                                   confidence=str(tmp_path / "conf.tif"), areas=str(tmp_path / "areas.csv"),
                                   quicklook=str(tmp_path / "ql.png")))
    assert file_digest(src) == digest  # the input is never modified
    assert res.sensor == "rgbn"
    out, data = assert_styled_map(tmp_path / "naip.tif", src)
    src_ds = gdal.Open(str(src))  # keep the dataset alive while its band is used
    valid = src_ds.GetRasterBand(1).ReadAsArray() != 0  # NAIP nodata is 0
    assert (data[valid] >= 1).all()
    meta = out.GetMetadata()
    assert meta["FBP_SENSOR"] == "rgbn" and "untrained" in meta["FBP_MODEL_PROVENANCE"]
    assert json.loads(meta["FBP_STATS"])["source"]
    conf_ds = gdal.Open(str(tmp_path / "conf.tif"))
    conf = conf_ds.GetRasterBand(1)
    c = conf.ReadAsArray()
    assert conf.GetNoDataValue() == -1 and c[valid].min() >= 0 and c.max() <= 1
    table = json.loads((tmp_path / "areas.json").read_text())
    counts = np.bincount(data.ravel(), minlength=25)
    assert [r["pixels"] for r in table["classes"]] == counts[1:].tolist()
    assert table["classes"][0]["hectares"] == pytest.approx(counts[1] * 25 / 1e4)  # 5 m pixels
    assert (tmp_path / "naip.qml").read_text() == classes.qml()
    assert (tmp_path / "ql.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert leftovers(tmp_path) == []


def test_haiti_with_extent_keeps_the_snapped_grid(shared_data, model, tmp_path):
    src = gdal.Open(str(shared_data / "haiti_rgbn_5m.tif"))
    gt = src.GetGeoTransform()
    extent = (gt[0] + 52.5, gt[3] - 300.2, gt[0] + 400.0, gt[3] - 10.0)
    res = map_landcover(MapRequest(image=str(shared_data / "haiti_rgbn_5m.tif"),
                                   output=str(tmp_path / "h.tif"),
                                   model=model, sensor="rgbn", extent=extent))
    out = gdal.Open(res.output)
    ogt = out.GetGeoTransform()
    assert ogt == (gt[0] + 50.0, 5.0, 0.0, gt[3] - 10.0, 0.0, -5.0)
    assert (out.RasterXSize, out.RasterYSize) == (70, 59)


def test_sentinel2_13_band_scene(shared_data, model, tmp_path):
    src = shared_data / "slovenia_s2l1c_scene2_13band_10m.tif"
    res = map_landcover(MapRequest(image=str(src), output=str(tmp_path / "s2.tif"), model=model))
    assert res.sensor == "sentinel2"
    assert_styled_map(tmp_path / "s2.tif", src)


def test_mask_raster_and_nodata_become_zero(model, tmp_path):
    img = random_scene(90, 120, dtype=np.uint16)
    img[:, :10, :] = 0
    src = write_raster(tmp_path / "gf2.tif", img, nodata=0)
    mask = np.zeros((90, 120), np.uint8)
    mask[40:50, 60:100] = 1
    write_raster(tmp_path / "mask.tif", mask)
    res = map_landcover(MapRequest(image=str(src), output=str(tmp_path / "o.tif"), model=model,
                                   sensor="gaofen2", mask=str(tmp_path / "mask.tif")))
    _, data = assert_styled_map(Path(res.output), src)
    assert (data[:10] == 0).all() and (data[40:50, 60:100] == 0).all()
    assert (data[10:40] >= 1).all()


def test_geographic_raster_keeps_its_grid_and_true_areas(model, tmp_path):
    gt = (14.5, 0.0001, 0.0, 45.9, 0.0, -0.0001)
    src = write_raster(tmp_path / "geo.tif", random_scene(64, 80), geotransform=gt, epsg=4326)
    res = map_landcover(MapRequest(image=str(src), output=str(tmp_path / "geo_map.tif"), model=model,
                                   sensor="rgbn", areas=str(tmp_path / "a.csv")))
    assert_styled_map(Path(res.output), src)
    total_km2 = sum(r["km2"] for r in res.areas)
    # ~ 80 x 0.0001 deg of longitude at 45.9 N by 64 x 0.0001 deg of latitude
    assert total_km2 == pytest.approx(0.8 * 0.7757 * 0.64 * 1.1119, rel=0.01)


def test_a_raster_smaller_than_a_window_and_a_1x1_raster(model, tmp_path):
    for shape in [(1, 1), (7, 300)]:
        src = write_raster(tmp_path / f"s{shape[0]}.tif", random_scene(*shape))
        res = map_landcover(MapRequest(image=str(src), output=str(tmp_path / f"o{shape[0]}.tif"), model=model,
                                       sensor="rgbn"))
        _, data = assert_styled_map(Path(res.output), src)
        assert data.shape == shape and (data >= 1).all()


def test_cancel_leaves_no_file(model, tmp_path):
    src = write_raster(tmp_path / "in.tif", random_scene(200, 200))
    calls = []

    def cancel_after_some():
        calls.append(1)
        return len(calls) > 6

    with pytest.raises(CancelledError):
        map_landcover(MapRequest(image=str(src), output=str(tmp_path / "o.tif"), model=model, sensor="rgbn",
                                 window=64, overlap=8, confidence=str(tmp_path / "c.tif")),
                      is_cancelled=cancel_after_some)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.tif"]


@pytest.fixture()
def scene(tmp_path) -> Path:
    return write_raster(tmp_path / "scene.tif", random_scene(40, 50))


def expect_refusal(req: MapRequest, match: str, folder: Path, inputs: list[Path]):
    before = {p: file_digest(p) for p in inputs if p.exists()}
    files_before = sorted(folder.iterdir())
    with pytest.raises(FbpError, match=match):
        map_landcover(req)
    assert sorted(folder.iterdir()) == files_before  # no output, no temporary file
    assert {p: file_digest(p) for p in before} == before


def test_bad_inputs_are_refused_with_a_sentence(model, scene, tmp_path):
    out = str(tmp_path / "out.tif")
    text = tmp_path / "notes.txt"
    text.write_text("not a raster")
    expect_refusal(MapRequest(image=str(text), output=out, model=model, sensor="rgbn"),
                   r"notes\.txt", tmp_path, [text])
    expect_refusal(MapRequest(image=str(tmp_path / "missing.tif"), output=out, model=model, sensor="rgbn"),
                   r"missing\.tif", tmp_path, [])
    two = write_raster(tmp_path / "two.tif", random_scene(20, 20, bands=2))
    expect_refusal(MapRequest(image=str(two), output=out, model=model, sensor="gaofen2"),
                   r"2 band", tmp_path, [two])
    nod = write_raster(tmp_path / "nod.tif", np.zeros((4, 30, 30), np.uint8), nodata=0)
    expect_refusal(MapRequest(image=str(nod), output=out, model=model, sensor="rgbn"),
                   r"nodata", tmp_path, [nod])
    expect_refusal(MapRequest(image=str(scene), output=out, model=model, sensor="landsat9"),
                   r"landsat9", tmp_path, [scene])
    expect_refusal(MapRequest(image=str(scene), output=out, model=str(tmp_path / "nomodel.fbpmodel"),
                              sensor="rgbn"), r"nomodel", tmp_path, [scene])
    expect_refusal(MapRequest(image=str(scene), output=out, model=str(text), sensor="rgbn"),
                   r"notes\.txt", tmp_path, [scene])


def test_bahamas_rgb_is_refused_for_a_4_band_model(shared_data, model, tmp_path):
    src = shared_data / "bahamas_rgb_byte_300m.tif"
    with pytest.raises(FbpError, match=r"3 band.*NIR|NIR.*3 band"):
        map_landcover(MapRequest(image=str(src), output=str(tmp_path / "b.tif"), model=model))
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(model, scene, tmp_path):
    out = tmp_path / "out.tif"
    out.write_bytes(b"precious")
    with pytest.raises(FbpError, match="already exists"):
        map_landcover(MapRequest(image=str(scene), output=str(out), model=model, sensor="rgbn"))
    assert out.read_bytes() == b"precious"
    map_landcover(MapRequest(image=str(scene), output=str(out), model=model, sensor="rgbn", overwrite=True))
    assert gdal.Open(str(out)).RasterXSize == 50


def test_unwritable_folder_is_refused(model, scene, tmp_path):
    """/proc/1 exists but no one, not even root, can create files in it."""
    with pytest.raises(FbpError, match="Cannot write"):
        map_landcover(MapRequest(image=str(scene), output="/proc/1/landcover.tif", model=model,
                                 sensor="rgbn"))


def test_output_folder_that_does_not_exist_or_is_a_file(model, scene, tmp_path):
    with pytest.raises(FbpError, match="does not exist"):
        map_landcover(MapRequest(image=str(scene), output=str(tmp_path / "nope" / "o.tif"), model=model,
                                 sensor="rgbn"))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(FbpError):
        map_landcover(MapRequest(image=str(scene), output=str(blocker / "o.tif"), model=model, sensor="rgbn"))


def test_overviews_hold_class_values_only(model, tmp_path):
    src = write_raster(tmp_path / "big.tif", random_scene(600, 700))
    res = map_landcover(MapRequest(image=str(src), output=str(tmp_path / "o.tif"), model=model,
                                   sensor="rgbn"))
    ds = gdal.Open(res.output)
    band = ds.GetRasterBand(1)
    full = band.ReadAsArray()
    assert band.GetOverviewCount() == 1
    overview = band.GetOverview(0).ReadAsArray()
    assert overview.shape == (300, 350)
    assert set(np.unique(overview)) <= set(np.unique(full))  # mode resampling: no invented classes
