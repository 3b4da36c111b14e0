"""classareas, collapseclasses, addmodel, diagnostics; and the missing-engine sentence."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from fbp_landcover.engine import classes
from tests.rasters import write_raster

gdal.UseExceptions()
LEGENDS = Path(classes.__file__).with_name("legends")


def _class_raster(tmp_path) -> tuple[Path, np.ndarray]:
    """40 x 30 pixels of 4 m (16 m² each): class k covers k rows' worth of known counts, some 0."""
    arr = np.zeros((30, 40), np.uint8)
    arr.ravel()[: 24 * 40] = np.repeat(np.arange(1, 25, dtype=np.uint8), 40)
    arr[0, :5] = 0  # 5 nodata pixels taken from class 1
    return write_raster(tmp_path / "classes.tif", arr, nodata=0), arr


def test_classareas_counts_exact_areas(fbp_provider, tmp_path):
    import processing

    path, arr = _class_raster(tmp_path)
    res = processing.run("fbplandcover:classareas", {"INPUT": str(path), "OUTPUT": str(tmp_path / "a.csv")})
    rows = list(csv.DictReader(open(res["OUTPUT"])))
    assert [int(r["index"]) for r in rows] == list(range(1, 25))
    expected = {k: int((arr == k).sum()) for k in range(1, 25)}
    assert expected[1] == 35 and expected[2] == 40
    for r in rows:
        k = int(r["index"])
        assert int(r["pixels"]) == expected[k]
        assert float(r["km2"]) == pytest.approx(expected[k] * 16 / 1e6)
        assert r["name"] == classes.CLASSES[k].name and r["hex"] == classes.CLASSES[k].hex
    assert sum(float(r["percent"]) for r in rows) == pytest.approx(100.0, abs=1e-3)
    assert json.loads(Path(res["OUTPUT_JSON"]).read_text())["total"]["pixels"] == sum(expected.values())


@pytest.mark.parametrize("legend", ["gid5", "coarse"])
def test_collapseclasses_recodes_and_styles(fbp_provider, tmp_path, legend, qgis_new_project):
    import processing
    from qgis.core import QgsProcessingContext, QgsProject

    spec = json.loads((LEGENDS / f"{legend}.json").read_text())
    table = np.zeros(256, np.uint8)
    for target in spec["classes"]:
        table[target["fbp"]] = target["value"]
    path, arr = _class_raster(tmp_path)
    out = tmp_path / f"{legend}.tif"
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    processing.runAndLoadResults("fbplandcover:collapseclasses",
                                 {"INPUT": str(path), "LEGEND": legend, "OUTPUT": str(out)}, context=context)
    ds = gdal.Open(str(out))
    band = ds.GetRasterBand(1)
    np.testing.assert_array_equal(band.ReadAsArray(), table[arr])
    assert ds.GetGeoTransform() == gdal.Open(str(path)).GetGeoTransform()
    assert band.GetNoDataValue() == 0
    names = band.GetCategoryNames()
    for target in spec["classes"]:
        assert names[target["value"]] == target["name"]
        assert band.GetColorTable().GetColorEntry(target["value"]) == (*target["rgb"], 255)
    layer = next(lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.source() == str(out))
    renderer = layer.renderer()
    assert renderer.type() == "paletted"
    assert [(c.value, c.label, c.color.getRgb()[:3]) for c in renderer.classes()] == sorted(
        (t["value"], t["name"], tuple(t["rgb"])) for t in spec["classes"])


def test_addmodel_registers_and_maplandcover_uses_it(fbp_provider, models_folder, tiny_model_path, naip_crop,
                                                     tmp_path):
    import processing

    from fbp_landcover.plugin.models_folder import model_entries

    res = processing.run("fbplandcover:addmodel", {"INPUT": str(tiny_model_path)})
    assert res["NAME"] == "tiny"
    assert Path(res["PATH"]) == models_folder / "tiny.fbpmodel" and Path(res["PATH"]).is_file()
    assert res["MEMORY"] is False
    # the fast CPU form is made at the add, so that the first map is as fast as the next
    [onnx] = models_folder.glob("tiny.*.onnx")
    assert res["CPU_FORM"] == f"ready: {onnx.name}"
    entries = model_entries(str(models_folder))
    assert [e.name for e in entries] == ["tiny"]
    assert "smp" in entries[0].summary and "mobilenetv3" in entries[0].summary
    exported = onnx.stat().st_mtime_ns
    out = processing.run("fbplandcover:maplandcover", {
        "INPUT": str(naip_crop), "SENSOR": "rgbn", "BACKEND": "auto", "OUTPUT": str(tmp_path / "lc.tif")})
    assert gdal.Open(out["OUTPUT"]).RasterXSize == 160
    assert out["BACKEND_USED"] == "onnx" and onnx.stat().st_mtime_ns == exported  # used, not exported again


def test_addmodel_rejects_a_non_model(fbp_provider, models_folder, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    bogus = tmp_path / "notes.fbpmodel"
    bogus.write_text("not a model")
    with pytest.raises(QgsProcessingException) as info:
        processing.run("fbplandcover:addmodel", {"INPUT": str(bogus)})
    assert "notes.fbpmodel" in str(info.value)
    assert list(models_folder.iterdir()) == []


def test_diagnostics_text(fbp_provider, models_folder, tmp_path):
    import processing
    from qgis.core import Qgis

    from fbp_landcover.engine import __version__

    res = processing.run("fbplandcover:diagnostics", {"OUTPUT": str(tmp_path / "d.txt")})
    text = res["TEXT"]
    import torch

    for line in (f"QGIS: {Qgis.version()}", f"Python: {sys.version.split()[0]}", f"GDAL: {gdal.__version__}",
                 f"torch: {torch.__version__}", "CUDA available: ", "Device in use: ",
                 f"Engine version: {__version__}", f"Model folder: {models_folder}",
                 "Registered models: none"):
        assert line in text, line
    assert Path(res["OUTPUT"]).read_text().strip() == text


@pytest.fixture
def engine_missing(monkeypatch):
    """torch fails to import, as in a QGIS started without the venv."""
    from fbp_landcover.engine import torch_import
    from fbp_landcover.plugin import engine_check

    def no_torch():
        raise ModuleNotFoundError("No module named 'torch'")

    monkeypatch.setattr(torch_import, "import_torch", no_torch)
    engine_check.reset()
    yield
    engine_check.reset()


def test_missing_engine_is_one_sentence_in_algorithms(fbp_provider, engine_missing, naip_crop, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    from fbp_landcover.plugin.engine_check import engine_problem

    sentence = engine_problem()
    assert sentence.startswith("The FBP Land Cover engine is not installed for this QGIS yet: PyTorch "
                               "(torch) "
                               "cannot be loaded by QGIS's Python")
    assert "fbplandcover:installengine" in sentence and "No module named 'torch'" in sentence
    assert "\n" not in sentence
    alg = fbp_provider.algorithm("maplandcover")
    assert alg.canExecute() == (False, sentence)
    with pytest.raises(QgsProcessingException) as info:
        processing.run("fbplandcover:maplandcover", {"INPUT": str(naip_crop),
                                                     "OUTPUT": str(tmp_path / "x.tif")})
    assert sentence in str(info.value) and "Traceback" not in str(info.value)
    diag = processing.run("fbplandcover:diagnostics", {})["TEXT"]
    assert f"Engine: NOT USABLE: {sentence}" in diag
