"""Country-scale mapping (engine.many): mosaic grid, overlap rules, resuming, failures, zonal areas."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from fbp_landcover.engine import classes
from fbp_landcover.engine import mapping as mapping_module
from fbp_landcover.engine.cli.many import add_commands
from fbp_landcover.engine.errors import CancelledError, FbpError
from fbp_landcover.engine.io.lock import LOCK_NAME
from fbp_landcover.engine.many import ManyJob, map_many
from fbp_landcover.engine.many import manifest as mf
from fbp_landcover.engine.many.mosaic import composite, priority, scene_date
from fbp_landcover.engine.mapping import MapRequest
from tests.models import tiny_checkpoint
from tests.rasters import random_scene, write_raster

gdal.UseExceptions()

UTM50 = 32650


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return str(tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.fbpmodel"))


def read(path) -> np.ndarray:
    ds = gdal.Open(str(path))
    return ds.GetRasterBand(1).ReadAsArray()


def job(inputs, out, model, **kw) -> ManyJob:
    return ManyJob(inputs=[str(i) for i in inputs], output_dir=str(out),
                   request=MapRequest(image="", output="", model=model, sensor="rgbn"), **kw)


def count_calls(monkeypatch) -> list[str]:
    """Record every map_landcover call (the scene image) while still running it."""
    calls: list[str] = []
    real = mapping_module.map_landcover

    def wrapped(req, progress=None, is_cancelled=None):
        res = real(req, progress, is_cancelled)
        calls.append(str(req.image))
        return res

    monkeypatch.setattr(mapping_module, "map_landcover", wrapped)
    return calls


# --- the compositing rule on hand-made blocks ----------------------------------------------------


def test_composite_rules_on_hand_made_blocks():
    a_cls = np.array([[1, 1, 0], [1, 1, 0]], np.uint8)
    a_conf = np.array([[0.9, 0.2, -1], [0.5, 0.5, -1]], np.float32)
    b_cls = np.array([[2, 2, 2], [0, 2, 2]], np.uint8)
    b_conf = np.array([[0.1, 0.8, 0.3], [-1, 0.5, 0.7]], np.float32)
    cls, conf = composite([a_cls, b_cls], [a_conf, b_conf], "confidence")
    assert cls.tolist() == [[1, 2, 2], [1, 1, 2]]  # ties (0.5 vs 0.5) go to the earlier scene
    assert np.array_equal(conf, np.array([[0.9, 0.8, 0.3], [0.5, 0.5, 0.7]], np.float32))
    cls, conf = composite([a_cls, b_cls], [a_conf, b_conf], "first")
    assert cls.tolist() == [[1, 1, 2], [1, 1, 2]]
    cls, _ = composite([b_cls, a_cls], [b_conf, a_conf], "first")
    assert cls.tolist() == [[2, 2, 2], [1, 2, 2]]
    cls, conf = composite([np.zeros((1, 2), np.uint8)], [np.full((1, 2), -1, np.float32)], "confidence")
    assert cls.tolist() == [[0, 0]] and conf.tolist() == [[-1, -1]]


def test_recent_rule_orders_by_date_in_name_then_file_time(tmp_path):
    named = tmp_path / "S2_20210615_T50.tif"
    named.write_bytes(b"x")
    dashed = tmp_path / "scene_2019-03-02.tif"
    dashed.write_bytes(b"x")
    plain = tmp_path / "plain.tif"
    plain.write_bytes(b"x")
    os.utime(plain, (1_600_000_000, 1_600_000_000))  # 2020-09-13
    dates = [scene_date(str(p)) for p in (dashed, named, plain)]
    assert dates == [("2019-03-02", "file name"), ("2021-06-15", "file name"),
                     ("2020-09-13T12:26:40", "file time")]
    assert priority([d for d, _ in dates], "recent") == [1, 2, 0]
    assert priority([d for d, _ in dates], "first") == [0, 1, 2]
    assert priority(["2020", "2020"], "recent") == [0, 1]  # equal dates keep the listed order
    with pytest.raises(FbpError, match="overlap rule"):
        priority(["a"], "largest")


# --- a mosaic of scenes in two CRSs ----------------------------------------------------------------


def _scenes(folder: Path) -> dict[str, Path]:
    """A and D overlap (32650); B apart (32650); C in EPSG:32651, in the gap between them."""
    folder.mkdir()
    s = {
        "a": write_raster(folder / "a_20200101.tif", random_scene(64, 80, seed=1),
                          geotransform=(500000.0, 4.0, 0.0, 4000000.0, 0.0, -4.0), epsg=UTM50),
        "b": write_raster(folder / "b_20200101.tif", random_scene(64, 80, seed=2),
                          geotransform=(500400.0, 4.0, 0.0, 3999600.0, 0.0, -4.0), epsg=UTM50),
        "d": write_raster(folder / "d_20220101.tif", random_scene(64, 80, seed=4),
                          geotransform=(500160.0, 4.0, 0.0, 4000000.0, 0.0, -4.0), epsg=UTM50),
    }
    # C: 30x30 px of 4 m in UTM 51 centred on (500200, 3999470) of UTM 50
    src, dst = osr.SpatialReference(), osr.SpatialReference()
    src.ImportFromEPSG(UTM50)
    dst.ImportFromEPSG(32651)
    for srs in (src, dst):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    cx, cy, _ = osr.CoordinateTransformation(src, dst).TransformPoint(500200.0, 3999470.0)
    s["c"] = write_raster(folder / "c.tif", random_scene(30, 30, seed=3),
                          geotransform=(cx - 60, 4.0, 0.0, cy + 60, 0.0, -4.0), epsg=32651)
    return s


@pytest.mark.slow  # about 20 s on 2 cores (the first ONNX export of the tiny model is here)
def test_mosaic_of_scenes_in_two_crs(model, tmp_path, monkeypatch):
    s = _scenes(tmp_path / "in")
    inputs = [s["a"], s["b"], s["c"], s["d"]]
    out = tmp_path / "out"
    res = map_many(job(inputs, out, model))
    assert res.failed == [] and res.mapped == 4 and res.skipped == 0

    # the grid: the first scene's CRS and pixels, covering A..D exactly (C lies inside their bounds)
    ds = gdal.Open(res.mosaic)
    assert ds.GetGeoTransform() == (500000.0, 4.0, 0.0, 4000000.0, 0.0, -4.0)
    assert (ds.RasterXSize, ds.RasterYSize) == (180, 164)
    ref = osr.SpatialReference()
    ref.ImportFromEPSG(UTM50)
    assert ds.GetSpatialRef().IsSame(ref)
    band = ds.GetRasterBand(1)
    assert ds.GetMetadata("IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    assert ds.GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
    assert band.GetNoDataValue() == 0 and band.GetCategoryNames() == classes.names()
    table = band.GetColorTable()
    assert [table.GetColorEntry(i)[:3] for i in range(25)] == [c.rgb for c in classes.CLASSES]
    assert ds.GetMetadata()["FBP_OVERLAP_RULE"] == "confidence"
    mosaic = band.ReadAsArray()

    scene = {k: read(out / "scenes" / f"{Path(p).stem}.tif") for k, p in s.items()}
    conf = {k: read(out / "scenes" / f"{Path(p).stem}_confidence.tif") for k, p in s.items()}
    # where scenes do not overlap, the mosaic is the single-scene map, exactly
    assert np.array_equal(mosaic[0:64, 0:40], scene["a"][:, 0:40])
    assert np.array_equal(mosaic[100:164, 100:180], scene["b"])
    assert np.array_equal(mosaic[0:64, 80:120], scene["d"][:, 40:80])
    # A and D overlap in columns 40..80: the more confident pixel wins, ties to A (listed first)
    a_ov, d_ov = scene["a"][:, 40:80], scene["d"][:, 0:40]
    a_wins = conf["a"][:, 40:80] >= conf["d"][:, 0:40]
    assert np.array_equal(mosaic[0:64, 40:80], np.where(a_wins, a_ov, d_ov))
    assert 0 < a_wins.sum() < a_wins.size  # both scenes win somewhere: the rule is exercised
    # C (another CRS) is warped with nearest neighbour onto the grid
    warped_ds = gdal.Warp("", str(out / "scenes" / "c.tif"), format="MEM", dstSRS=ref.ExportToWkt(),
                          outputBounds=(500000.0, 4000000.0 - 164 * 4, 500720.0, 4000000.0), width=180,
                          height=164, resampleAlg="near", dstNodata=0)
    warped = warped_ds.GetRasterBand(1).ReadAsArray()
    inside_c = warped > 0
    assert inside_c.sum() > 700 and np.array_equal(mosaic[inside_c], warped[inside_c])
    covered = np.zeros_like(mosaic, bool)
    covered[0:64, 0:120] = covered[100:164, 100:180] = True
    assert (mosaic[~covered & ~inside_c] == 0).all()

    # mosaic confidence and the virtual mosaic agree with the product where scenes do not overlap
    mconf = read(res.mosaic_confidence)
    assert np.array_equal(mconf[100:164, 100:180], conf["b"])
    vrt = read(res.mosaic_vrt)
    assert vrt.shape == mosaic.shape and np.array_equal(vrt[100:164, 100:180], scene["b"])

    # areas: every mosaic pixel once, 16 m² each
    table = json.loads(Path(res.areas_json).read_text())
    counts = np.bincount(mosaic.ravel(), minlength=25)
    assert [r["pixels"] for r in table["classes"]] == counts[1:].tolist()
    assert table["total"]["km2"] == pytest.approx(counts[1:].sum() * 16 / 1e6)

    # another rule on the same folder: no scene is mapped again, only the mosaic changes
    calls = count_calls(monkeypatch)
    res = map_many(job(inputs, out, model, overlap="first"))
    assert calls == [] and res.skipped == 4
    assert np.array_equal(read(res.mosaic)[0:64, 40:80], a_ov)
    res = map_many(job(inputs, out, model, overlap="recent"))  # D (2022) is newer than A (2020)
    assert np.array_equal(read(res.mosaic)[0:64, 40:80], d_ov)
    assert calls == []


def test_interrupted_job_resumes_without_recomputing(model, tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(3):
        write_raster(folder / f"s{k}.tif", random_scene(48, 64, seed=10 + k),
                     geotransform=(500000.0 + 200 * k, 4.0, 0.0, 4000000.0 - 40 * k, 0.0, -4.0))
    calls = count_calls(monkeypatch)
    out = tmp_path / "out"
    with pytest.raises(CancelledError):
        map_many(job([folder], out, model), is_cancelled=lambda: len(calls) >= 2)
    man = json.loads((out / "manifest.json").read_text())
    assert [s["state"] for s in man["scenes"]] == ["done", "done", "pending"]
    assert not (out / "mosaic.tif").exists()
    hidden = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
    assert hidden == [LOCK_NAME]  # no half-written files; the job's lock file (released, empty) stays
    stamps = {p: p.stat().st_mtime_ns for p in (out / "scenes").glob("s[01]*.tif")}

    calls.clear()
    res = map_many(job([folder], out, model))
    assert calls == [str(folder / "s2.tif")] and res.skipped == 2 and res.mapped == 1
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps

    calls.clear()
    full = map_many(job([folder], tmp_path / "full", model))
    assert len(calls) == 3
    assert np.array_equal(read(res.mosaic), read(full.mosaic))
    assert np.array_equal(read(res.mosaic_confidence), read(full.mosaic_confidence))

    # a changed input is mapped again, the others are not
    calls.clear()
    write_raster(folder / "s1.tif", random_scene(48, 64, seed=99),
                 geotransform=(500200.0, 4.0, 0.0, 3999960.0, 0.0, -4.0))
    map_many(job([folder], out, model))
    assert calls == [str(folder / "s1.tif")]


def test_a_corrupt_scene_fails_alone_and_the_cli_says_so(model, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    write_raster(folder / "good.tif", random_scene(40, 56, seed=5))
    (folder / "broken.tif").write_text("this is not a raster")
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    args = parser.parse_args(["map-many", str(folder), "--model", model, "-o", str(tmp_path / "out"),
                              "--sensor", "rgbn"])
    from fbp_landcover.engine.cli import TqdmProgress

    assert args.func(args, TqdmProgress(quiet=True)) == 1
    printed = capsys.readouterr().out
    assert f"FAILED {folder / 'broken.tif'}:" in printed and "Mosaic:" in printed
    man = json.loads((tmp_path / "out" / "manifest.json").read_text())
    states = {Path(s["input"]).name: (s["state"], s["error"]) for s in man["scenes"]}
    assert states["good.tif"] == ("done", "")
    assert states["broken.tif"][0] == "failed" and "broken.tif" in states["broken.tif"][1]
    assert np.array_equal(read(tmp_path / "out" / "mosaic.tif"),
                          read(tmp_path / "out" / "scenes" / "good.tif"))
    assert not (tmp_path / "out" / "scenes" / "broken.tif").exists()

    calls = count_calls(monkeypatch)  # a re-run tries the failed scene again, and only it
    res = map_many(job([folder], tmp_path / "out", model))
    assert calls == [] and len(res.failed) == 1 and res.skipped == 1  # it failed again, before mapping


def _zones(path: Path) -> Path:
    """Two rectangles on pixel edges of the grid (500000, 4000000, 4 m): cols 0..10 x rows 0..20 and
    cols 10..30 x rows 5..25, named 'west' and 'east'."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(UTM50)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("zones", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("name", ogr.OFTString))
    for name, (c0, r0, c1, r1) in (("west", (0, 0, 10, 20)), ("east", (10, 5, 30, 25))):
        x0, x1 = 500000 + 4 * c0, 500000 + 4 * c1
        y0, y1 = 4000000 - 4 * r1, 4000000 - 4 * r0
        feat = ogr.Feature(layer.GetLayerDefn())
        feat.SetField("name", name)
        wkt = f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y1},{x0} {y0}))"
        feat.SetGeometry(ogr.CreateGeometryFromWkt(wkt))
        layer.CreateFeature(feat)
    ds = None
    return path


def test_zonal_areas_match_hand_counts(model, tmp_path):
    scene = write_raster(tmp_path / "one.tif", random_scene(40, 48, seed=7))
    zones = _zones(tmp_path / "zones.gpkg")
    res = map_many(job([scene], tmp_path / "out", model, zones=str(zones), zone_field="name"))
    mosaic = read(res.mosaic)
    expect = []
    for fid, name, sl in ((1, "west", np.s_[0:20, 0:10]), (2, "east", np.s_[5:25, 10:30])):
        counts = np.bincount(mosaic[sl].ravel(), minlength=25)
        expect += [{"zone_id": fid, "zone": name, "class": c, "name": classes.CLASSES[c].name,
                    "pixels": int(counts[c]), "km2": round(counts[c] * 16 / 1e6, 6)}
                   for c in range(1, 25) if counts[c]]
    assert json.loads(Path(res.zones_json).read_text())["rows"] == expect
    lines = Path(res.zones_csv).read_text().splitlines()
    assert lines[0] == "zone_id,zone,class,name,pixels,km2" and len(lines) == len(expect) + 1
    with pytest.raises(FbpError, match="no field 'nom'"):
        map_many(job([scene], tmp_path / "out", model, zones=str(zones), zone_field="nom"))


def test_inputs_and_output_folder_are_checked(model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_raster(folder / "x.TIF", random_scene(8, 8))
    (folder / "notes.txt").write_text("x")
    from fbp_landcover.engine.many.job import expand_inputs

    assert expand_inputs([str(folder), str(folder / "x.TIF")]) == [str(folder / "x.TIF")]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FbpError, match="has no"):
        expand_inputs([str(tmp_path / "empty")])
    with pytest.raises(FbpError, match="does not exist"):
        expand_inputs([str(tmp_path / "missing.tif")])
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    with pytest.raises(FbpError, match="no manifest.json"):
        map_many(job([folder], busy, model))
    assert (busy / "mine.txt").read_text() == "keep me"
    assert mf.is_reusable(None, "k") is False


def test_fingerprint_samples_the_whole_file_not_only_its_head(tmp_path):
    """An edit after the first MiB with size and mtime restored changes the fingerprint when it touches a
    sampled block (the last MiB, or one of the 64 blocks between); an unsampled byte does not (documented)."""
    import os

    from fbp_landcover.engine.many import manifest as mf

    path = tmp_path / "scene.tif"
    data = bytearray(os.urandom(12 << 20))
    path.write_bytes(bytes(data))
    st = path.stat()
    ranges = mf.sampled_ranges(len(data))
    assert ranges[0] == (0, 1 << 20) and ranges[-1] == (len(data) - (1 << 20), 1 << 20) and len(ranges) == 66
    assert sum(n for _, n in ranges) == (2 << 20) + 64 * (1 << 16)
    before = mf.fingerprint(path)

    def edit(offset: int) -> dict:
        changed = bytearray(data)
        changed[offset] ^= 0xFF
        path.write_bytes(bytes(changed))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        return mf.fingerprint(path)

    assert edit(len(data) - 10) != before  # the last MiB (missed before: only the first MiB was hashed)
    assert edit(ranges[30][0] + 5) != before  # a sampled block in the middle
    gap = ranges[30][0] + ranges[30][1] + 10  # between two sampled blocks
    assert edit(gap) == before
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * 1000)
    assert mf.sampled_ranges(1000) == [(0, 1000)]
