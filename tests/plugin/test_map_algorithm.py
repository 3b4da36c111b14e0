"""fbplandcover:maplandcover through processing on real rasters with a tiny model."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from osgeo import gdal

from fbp_landcover.engine import classes
from tests.plugin.conftest import wait_for
from tests.rasters import file_digest, write_raster

gdal.UseExceptions()


def _read(path):
    ds = gdal.Open(str(path))
    return ds, ds.GetRasterBand(1).ReadAsArray()


def _grid(ds):
    return ds.RasterXSize, ds.RasterYSize, ds.GetGeoTransform(), ds.GetProjection()


def assert_fbp_palette(layer):
    renderer = layer.renderer()
    assert renderer.type() == "paletted"
    palette = renderer.classes()
    assert [c.value for c in palette] == list(range(1, 25))
    assert [c.label for c in palette] == [c.name for c in classes.CLASSES[1:]]
    assert [c.color.getRgb()[:3] for c in palette] == [c.rgb for c in classes.CLASSES[1:]]


def test_maplandcover_outputs_on_real_naip(fbp_provider, tiny_model_path, naip_crop, tmp_path,
                                           qgis_new_project):
    import processing
    from qgis.core import QgsProcessingContext, QgsProject

    before = file_digest(naip_crop)
    out, conf, areas = tmp_path / "lc.tif", tmp_path / "conf.tif", tmp_path / "areas.csv"
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    results = processing.runAndLoadResults("fbplandcover:maplandcover", {
        "INPUT": str(naip_crop), "SENSOR": "rgbn", "MODEL": str(tiny_model_path), "BACKEND": "torch",
        "OUTPUT": str(out), "CONFIDENCE": str(conf), "AREAS": str(areas)}, context=context)
    assert results["OUTPUT"] == str(out) and results["SENSOR_USED"] == "rgbn"
    assert results["DEVICE_USED"] == "cpu" and results["BACKEND_USED"] == "torch"
    src, _ = _read(naip_crop)
    ds, arr = _read(out)
    assert _grid(ds) == _grid(src)
    assert arr.dtype == np.uint8 and arr.min() >= 1 and arr.max() <= 24  # no nodata inside the crop
    assert ds.GetRasterBand(1).GetNoDataValue() == 0
    _, confidence = _read(conf)
    assert confidence.shape == arr.shape and 0.0 <= confidence.min() and confidence.max() <= 1.0
    rows = list(csv.DictReader(areas.open()))
    assert [int(r["index"]) for r in rows] == list(range(1, 25))
    counts = np.bincount(arr.ravel(), minlength=25)
    assert [int(r["pixels"]) for r in rows] == counts[1:].tolist()
    assert sum(float(r["km2"]) for r in rows) == pytest.approx(160 * 128 * 25 / 1e6, rel=1e-6)
    assert json.loads((tmp_path / "areas.json").read_text())["total"]["pixels"] == 160 * 128
    assert file_digest(naip_crop) == before

    # styled on loading by the post-processors (as in batch and model runs)
    layers = {layer.source(): layer for layer in QgsProject.instance().mapLayers().values()}
    assert_fbp_palette(layers[str(out)])
    pseudo = layers[str(conf)].renderer()
    assert pseudo.type() == "singlebandpseudocolor"
    assert (pseudo.classificationMin(), pseudo.classificationMax()) == (0.0, 1.0)
    ramp = pseudo.shader().rasterShaderFunction().colorRampItemList()
    assert ramp[0].color.name() == "#440154" and ramp[-1].color.name() == "#fde725"
    assert (ramp[0].value, ramp[-1].value) == (0.0, 1.0)


def test_extent_and_mask(fbp_provider, tiny_model_path, naip_crop, tmp_path):
    import processing

    src = gdal.Open(str(naip_crop))
    x0, px, _, y0, _, py = src.GetGeoTransform()
    # mask: the left 64 columns masked (non-zero)
    mask = np.zeros((128, 160), np.uint8)
    mask[:, :64] = 1
    mask_path = write_raster(tmp_path / "mask.tif", mask, geotransform=src.GetGeoTransform(), epsg=26914)
    # extent: columns 32..127, rows 16..79 of the crop, in the raster's CRS
    extent = f"{x0 + 32 * px},{x0 + 128 * px},{y0 + 80 * py},{y0 + 16 * py} [EPSG:26914]"
    out = tmp_path / "lc.tif"
    processing.run("fbplandcover:maplandcover", {
        "INPUT": str(naip_crop), "SENSOR": "rgbn", "MODEL": str(tiny_model_path), "BACKEND": "torch",
        "EXTENT": extent, "MASK": str(mask_path), "OUTPUT": str(out)})
    ds, arr = _read(out)
    gt = ds.GetGeoTransform()
    assert (ds.RasterXSize, ds.RasterYSize) == (96, 64)
    assert gt == pytest.approx((x0 + 32 * px, px, 0.0, y0 + 16 * py, 0.0, py))
    assert (arr[:, :32] == 0).all()  # crop columns 32..63 are masked
    assert (arr[:, 32:] >= 1).all() and (arr[:, 32:] <= 24).all()


def test_batch_of_two_inputs_as_tasks(fbp_provider, tiny_model_path, naip_crop, haiti_crop, tmp_path):
    """Batch: several inputs, each run as a QgsProcessingAlgRunnerTask in the task manager at once."""
    from qgis.core import (
        QgsApplication,
        QgsProcessingAlgRunnerTask,
        QgsProcessingContext,
        QgsProcessingFeedback,
    )

    alg = QgsApplication.processingRegistry().algorithmById("fbplandcover:maplandcover")
    runs, done = [], {}
    for name, path in (("naip", naip_crop), ("haiti", haiti_crop)):
        context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
        params = {"INPUT": str(path), "SENSOR": "rgbn", "MODEL": str(tiny_model_path), "BACKEND": "torch",
                  "OUTPUT": str(tmp_path / f"{name}.tif")}
        task = QgsProcessingAlgRunnerTask(alg, params, context, feedback)
        task.executed.connect(lambda ok, res, n=name: done.__setitem__(n, (ok, res)))
        runs.append((context, feedback, task))
        QgsApplication.taskManager().addTask(task)
    wait_for(lambda: len(done) == 2)
    for name, path in (("naip", naip_crop), ("haiti", haiti_crop)):
        ok, res = done[name]
        assert ok, name
        ds, arr = _read(res["OUTPUT"])
        assert _grid(ds) == _grid(gdal.Open(str(path)))
        assert arr.min() >= 1 and arr.max() <= 24


def test_errors_become_one_sentence(fbp_provider, tiny_model_path, naip_crop, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException) as info:
        processing.run("fbplandcover:maplandcover", {
            "INPUT": str(naip_crop), "SENSOR": "custom", "CUSTOM_MAPPING": "nir=9,r=1,g=2,b=3",
            "MODEL": str(tiny_model_path), "OUTPUT": str(tmp_path / "x.tif")})
    message = str(info.value)
    assert "band" in message and "Traceback" not in message and "\n" not in message.strip()
    assert not (tmp_path / "x.tif").exists()


def test_missing_model_folder_entry_says_how_to_add_one(fbp_provider, models_folder, naip_crop, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="Add model"):
        processing.run("fbplandcover:maplandcover", {
            "INPUT": str(naip_crop), "SENSOR": "rgbn", "OUTPUT": str(tmp_path / "x.tif")})


@pytest.mark.slow
def test_quick_adaptation_runs_before_mapping(fbp_provider, tiny_model_path, naip_crop, tmp_path):
    """ADAPT_ITERATIONS > 0 reaches the engine: it adapts (stage texts say so), then maps the same grid."""
    import processing
    from qgis.core import QgsProcessingFeedback

    texts = []

    class Recorder(QgsProcessingFeedback):
        def setProgressText(self, text):  # noqa: N802
            texts.append(text)
            super().setProgressText(text)

    out = tmp_path / "adapted.tif"
    res = processing.run("fbplandcover:maplandcover", {
        "INPUT": str(naip_crop), "SENSOR": "rgbn", "MODEL": str(tiny_model_path), "BACKEND": "torch",
        "ADAPT_ITERATIONS": 1, "OUTPUT": str(out)}, feedback=Recorder())
    assert any(t.startswith("Adapting: iteration 1 of 1") for t in texts), texts
    ran = json.loads(res["ADAPTATION"])  # what ran, for the panel's summary line
    assert ran["method"] == "bn+kl" and ran["iterations"] == 1 and 0.0 <= ran["final_pseudo_label_share"] <= 1
    assert ran["source_used"].startswith("none")
    plain = processing.run("fbplandcover:maplandcover", {
        "INPUT": str(naip_crop), "SENSOR": "rgbn", "MODEL": str(tiny_model_path), "BACKEND": "torch",
        "OUTPUT": str(tmp_path / "plain.tif")})
    assert plain["ADAPTATION"] == ""
    ds, arr = _read(out)
    assert _grid(ds) == _grid(gdal.Open(str(naip_crop)))
    assert arr.min() >= 1 and arr.max() <= 24


def test_batch_row_with_confidence_left_empty_reports_success(fbp_provider, tiny_model_path, naip_crop,
                                                               tmp_path):
    """The parameters the batch dialog builds for a row whose optional Confidence cell is empty: the run
    succeeds and Processing's result handling finds no layer "not correctly generated"."""
    from processing.gui.Postprocessing import handleAlgorithmResults
    from qgis.core import (
        QgsApplication,
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsProcessingOutputLayerDefinition,
        QgsProject,
    )

    project = QgsProject.instance()
    context = QgsProcessingContext()
    context.setProject(project)
    params = {"INPUT": str(naip_crop), "SENSOR": "rgbn", "MODEL": str(tiny_model_path), "BACKEND": "torch",
              "OUTPUT": QgsProcessingOutputLayerDefinition(str(tmp_path / "lc.tif"), project),
              "CONFIDENCE": QgsProcessingOutputLayerDefinition("", project), "AREAS": ""}
    alg = QgsApplication.processingRegistry().createAlgorithmById("fbplandcover:maplandcover")
    results, ok = alg.run(params, context, QgsProcessingFeedback())
    assert ok and results["CONFIDENCE"] is None
    assert list(context.layersToLoadOnCompletion()) == [str(tmp_path / "lc.tif")]
    assert handleAlgorithmResults(alg, context, QgsProcessingFeedback(), params) is True


def test_model_parameter_lists_the_registered_models_and_takes_a_file(fbp_provider, models_folder,
                                                                      tiny_model_path, naip_crop, tmp_path):
    """The dialog's Model is a list of the models in the folder (read when the dialog opens); a file
    chosen in Model file wins over it; a name typed by a script still works."""
    import processing
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback
    from qgis.gui import QgsGui, QgsProcessingGui
    from qgis.PyQt.QtWidgets import QComboBox

    from fbp_landcover.engine.models import registry

    for name in ("beta", "alpha"):
        registry.add_model(tiny_model_path, models_folder, name=name)
    alg = QgsApplication.processingRegistry().createAlgorithmById("fbplandcover:maplandcover")
    param = alg.parameterDefinition("MODEL")
    assert param.metadata()["widget_wrapper"]["value_hints"] == ["alpha", "beta"]
    wrapper = QgsGui.processingGuiRegistry().createParameterWidgetWrapper(param, QgsProcessingGui.Standard)
    combo = wrapper.createWrappedWidget(QgsProcessingContext())
    assert isinstance(combo, QComboBox)
    assert [combo.itemText(i) for i in range(combo.count())] == ["", "alpha", "beta"]
    assert alg.parameterDefinition("MODEL_FILE").fileFilter().startswith("Models (*.fbpmodel")

    infos = []

    class Recorder(QgsProcessingFeedback):
        def pushInfo(self, info):  # noqa: N802
            infos.append(info)
            super().pushInfo(info)

    processing.run("fbplandcover:maplandcover", {
        "INPUT": str(naip_crop), "SENSOR": "rgbn", "MODEL": "no-such-model",
        "MODEL_FILE": str(tiny_model_path), "BACKEND": "torch", "OUTPUT": str(tmp_path / "file.tif")},
        feedback=Recorder())
    assert any(f"with model {tiny_model_path} " in line for line in infos), infos
    processing.run("fbplandcover:maplandcover", {
        "INPUT": str(naip_crop), "SENSOR": "rgbn", "MODEL": "beta", "BACKEND": "torch",
        "OUTPUT": str(tmp_path / "named.tif")}, feedback=Recorder())
    assert any("with model beta " in line for line in infos), infos


def test_product_mask_auto_none_and_a_raster(fbp_provider, tiny_model_path, products, tmp_path):
    """A PlanetScope scene with its UDM2 beside it: 'auto' leaves what the UDM2 marks unclassified and says
    so in MASK_USED; 'none' maps every pixel; 'none' with a mask raster is refused with a sentence."""
    import processing
    from qgis.core import QgsProcessingException

    from tests.delivered_fixtures import SID, UDM2, planet_scene

    img = planet_scene(products, tmp_path, f"{SID}_3B_AnalyticMS_SR_clip.tif")
    base = {"INPUT": str(img), "SENSOR": "auto", "MODEL": str(tiny_model_path), "BACKEND": "torch",
            "STATS": "checkpoint"}
    auto = processing.run("fbplandcover:maplandcover", {**base, "OUTPUT": str(tmp_path / "auto.tif")})
    used = json.loads(auto["MASK_USED"])
    assert used["option"] == "auto" and any("UDM2" in u for u in used["used"]), used
    udm = gdal.Open(str(products / UDM2)).ReadAsArray()
    expected = float(((udm[0] == 0) | (udm[7] != 0)).mean())  # not clear, or unusable
    _, arr = _read(tmp_path / "auto.tif")
    assert used["masked_share"] == pytest.approx(expected, abs=0.005)
    assert float((arr == 0).mean()) == pytest.approx(expected, abs=0.005)
    none = processing.run("fbplandcover:maplandcover", {**base, "QUALITY_MASK": "none",
                                                        "OUTPUT": str(tmp_path / "none.tif")})
    assert json.loads(none["MASK_USED"])["used"] == []
    ds, arr = _read(tmp_path / "none.tif")
    assert ds.RasterXSize == 1184  # 1578 px of 3 m on the profile's 4 m grid: the last column half outside
    assert (arr[:, :-1] >= 1).all()
    with pytest.raises(QgsProcessingException, match="mask raster was given; choose 'auto'"):
        processing.run("fbplandcover:maplandcover", {**base, "QUALITY_MASK": 1, "MASK": str(img),
                                                     "OUTPUT": str(tmp_path / "x.tif")})
    assert not (tmp_path / "x.tif").exists()
