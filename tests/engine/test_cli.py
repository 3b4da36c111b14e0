"""The command line: exit codes, one-sentence errors without tracebacks, and a real run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from osgeo import gdal

from tests.models import tiny_checkpoint
from tests.rasters import random_scene, write_raster

CLI = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "fbp-landcover")


def cli(*args, cwd=None):
    return subprocess.run([CLI, "--quiet", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_map_info_and_models(tmp_path):
    model = tiny_checkpoint(tmp_path / "tiny.fbpmodel")
    src = write_raster(tmp_path / "gf2.tif", random_scene(70, 90, dtype="uint16"))
    run = cli("map", src, "--sensor", "gaofen2", "--model", model, "-o", tmp_path / "m.tif",
              "--areas", tmp_path / "a.csv")
    assert run.returncode == 0, run.stderr
    assert "Land-cover map:" in run.stdout and "gaofen2" in run.stdout
    assert gdal.Open(str(tmp_path / "m.tif")).RasterXSize == 90
    assert (tmp_path / "a.csv").read_text().startswith("index,name,hex,pixels")

    again = cli("map", src, "--sensor", "gaofen2", "--model", model, "-o", tmp_path / "m.tif")
    assert again.returncode == 1
    assert "already exists" in again.stderr and "Traceback" not in again.stderr

    info = cli("info", src, "--sensor", "gaofen2", "--json")
    assert info.returncode == 0, info.stderr
    facts = json.loads(info.stdout)
    assert facts["sensor"] == "gaofen2" and facts["windows"]["total"] == 1

    models = tmp_path / "models"
    imp = cli("models", "--models-dir", models, "import", model, "--name", "tiny")
    assert imp.returncode == 0, imp.stderr
    listing = cli("models", "--models-dir", models, "list")
    assert listing.stdout.startswith("tiny\t")
    by_name = cli("map", src, "--sensor", "gaofen2", "--model", "tiny", "--models-dir", models,
                  "-o", tmp_path / "n.tif")
    assert by_name.returncode == 0, by_name.stderr


def test_errors_are_one_sentence_and_exit_1(tmp_path):
    run = cli("map", tmp_path / "nope.tif", "--model", tmp_path / "x.fbpmodel", "-o", tmp_path / "o.tif")
    assert run.returncode == 1
    assert run.stderr.startswith("fbp-landcover: ") and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    usage = cli("map")
    assert usage.returncode == 2


def test_collapse_command(tmp_path):
    import numpy as np

    from fbp_landcover.engine.classes import load_collapse

    classes = np.arange(1, 25, dtype=np.uint8).reshape(4, 6)
    src = write_raster(tmp_path / "classes.tif", classes, nodata=0)
    run = cli("collapse", src, "gid5", "-o", tmp_path / "gid5.tif")
    assert run.returncode == 0, run.stderr
    ds = gdal.Open(str(tmp_path / "gid5.tif"))
    band = ds.GetRasterBand(1)
    collapse = load_collapse("gid5")
    assert band.ReadAsArray().tolist() == np.array(collapse.lookup_table(), np.uint8)[classes].tolist()
    assert band.GetNoDataValue() == 0 and band.GetCategoryNames() == collapse.names()
    assert cli("collapse", src, "gid5", "-o", tmp_path / "gid5.tif").returncode == 1  # exists: refused


def test_map_warns_on_stderr_when_the_sensor_looks_wrong(tmp_path, shared_data):
    model = tiny_checkpoint(tmp_path / "tiny.fbpmodel")
    # GDAL 3.6 (Debian 12) has no Dataset.Close(): the dataset is flushed when its last reference goes
    del_ = [gdal.Translate(str(tmp_path / "naip.tif"), str(shared_data / "naip_nd_2020_rgbn_5m.tif"),
                           srcWin=[300, 200, 64, 64])]
    del_.clear()
    wrong = cli("map", tmp_path / "naip.tif", "--sensor", "sentinel2", "--model", model,
                "-o", tmp_path / "w.tif")
    assert wrong.returncode == 0, wrong.stderr  # a warning, not an error: the user may know better
    assert wrong.stderr.startswith("warning: check the sensor: The raster holds 8-bit values but the "
                                   "'Sentinel-2 L1C/L2A")
    right = cli("map", tmp_path / "naip.tif", "--sensor", "rgbn", "--model", model, "-o", tmp_path / "r.tif")
    assert right.returncode == 0 and "warning" not in right.stderr


def test_areas_without_georeferencing_or_crs_are_flagged(tmp_path):
    """Areas of a raster without a geotransform (1 m pixels assumed) or without a CRS say so: a warning on
    stderr and ``area_warning`` in the area JSON; a georeferenced raster's areas carry none."""
    model = tiny_checkpoint(tmp_path / "tiny.fbpmodel")
    img = random_scene(40, 50, dtype="uint16")
    cases = {"nogeo": ((0.0, 1.0, 0.0, 0.0, 0.0, 1.0), 32650, "has no georeferencing"),
             "nocrs": ((500000.0, 4.0, 0.0, 4000000.0, 0.0, -4.0), None, "(4 × 4) as metres"),
             "ok": ((500000.0, 4.0, 0.0, 4000000.0, 0.0, -4.0), 32650, None)}
    for name, (gt, epsg, words) in cases.items():
        src = write_raster(tmp_path / f"{name}.tif", img, geotransform=gt, epsg=epsg)
        run = cli("map", src, "--sensor", "gaofen2", "--model", model, "-o", tmp_path / f"{name}_m.tif",
                  "--areas", tmp_path / f"{name}.csv")
        assert run.returncode == 0, run.stderr
        doc = json.loads((tmp_path / f"{name}.json").read_text())
        if words is None:
            assert "warning: areas" not in run.stderr and "area_warning" not in doc
            assert doc["total"]["km2"] == round(40 * 50 * 16 / 1e6, 6)
        else:
            assert "warning: areas: the raster has no " in run.stderr and words in run.stderr, run.stderr
            assert words in doc["area_warning"]
