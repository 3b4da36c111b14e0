"""fbplandcover:trainsourcemodel, adaptmodel and assessaccuracy through processing, on tiny generated data."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from osgeo import gdal

from fbp_landcover.engine.demo import synthetic
from fbp_landcover.engine.models.fbpmodel import read_card
from fbp_landcover.engine.training.source_memory import memory_path
from tests.models import TINY_SMP
from tests.rasters import write_raster

gdal.UseExceptions()

GT = (500000.0, 4.0, 0.0, 4000000.0, 0.0, -4.0)  # write_raster's default grid (EPSG:32650)


def _run(alg: str, params: dict) -> dict:
    import processing

    return processing.run(f"fbplandcover:{alg}", params)


@pytest.mark.slow
def test_trainsourcemodel_on_a_tiny_fbp_folder(fbp_provider, models_folder, tmp_path):
    root = tmp_path / "fbp"
    names = synthetic.write_source_dataset(root, n_scenes=2, size=128, seed=0)
    out = tmp_path / "trained.fbpmodel"
    results = _run("trainsourcemodel", {
        "SOURCE": str(root), "ARCHITECTURE": "custom", "SMP_ARCH": TINY_SMP["smp_arch"],
        "ENCODER": TINY_SMP["encoder"], "ENCODER_DEPTH": TINY_SMP["arch_kwargs"]["encoder_depth"],
        "DECODER_CHANNELS": ",".join(map(str, TINY_SMP["arch_kwargs"]["decoder_channels"])),
        "EPOCHS": 1, "ITERATIONS": 2, "BATCH_SIZE": 2, "PATCH": 64, "LR": 0.01, "CLASS_AWARE": True,
        "VAL_PATCHES": 2, "MEMORY_PATCHES": 4, "DEVICE": "cpu", "OUTPUT": str(out), "REGISTER": True})
    assert results["OUTPUT"] == str(out) and results["NAME"] == "trained"
    assert results["MEMORY"] == str(memory_path(out))
    card = read_card(out)
    assert (card.architecture, card.smp_arch, card.encoder) == ("smp", "Unet", TINY_SMP["encoder"])
    assert card.arch_kwargs == TINY_SMP["arch_kwargs"]
    p = card.provenance
    assert p["task"] == "source training" and p["iterations"] == 2 and p["epochs"] == 1
    assert p["patch"] == 64 and p["batch_size"] == 2 and p["lr"] == 0.01 and p["class_aware_sampling"] is True
    assert p["normalisation"] == "scene" and card.stats is None  # the default, as the CLI's and mapping's
    named = " ".join([*p["train_scenes"], *([p["validation_scenes"]] if isinstance(p["validation_scenes"],
                                                                                   str)
                                            else p["validation_scenes"])])
    assert all(name in named for name in names)
    assert results["VAL_MIOU"] == pytest.approx(p["val_miou"])
    # registered: the model and its source memory, side by side in the model folder
    assert read_card(models_folder / "trained.fbpmodel").provenance == p
    assert (models_folder / "trained.memory.npz").read_bytes() == memory_path(out).read_bytes()


def test_trainsourcemodel_defaults_to_per_scene_statistics_and_keeps_the_option_numbers(fbp_provider):
    from qgis.core import QgsApplication

    param = QgsApplication.processingRegistry().algorithmById(
        "fbplandcover:trainsourcemodel").parameterDefinition("STATS")
    # numbers in existing scripts keep their meaning: 0 = source, 1 = scene; the default is scene
    assert param.options() == ["source", "scene"] and param.defaultValue() == "scene"


@pytest.mark.slow
def test_adaptmodel_records_the_adaptation(fbp_provider, models_folder, tiny_model_path, tmp_path):
    target, _truth = synthetic.write_target_scene(tmp_path / "target.tif", tmp_path / "truth.tif",
                                                  "planetscope",
                                                  size=96, seed=3)
    out = tmp_path / "adapted.fbpmodel"
    results = _run("adaptmodel", {
        "TARGETS": [str(target)], "MODEL": str(tiny_model_path), "SOURCE": "none", "ITERATIONS": 2,
        "METHOD": "bn+pseudo", "CLASS_QUOTA": True, "BATCH_SIZE": 2, "PATCH": 64, "DEVICE": "cpu",
        "TEACHER": 0.9, "BN_TARGET_SHARE": 0.25, "OUTPUT": str(out), "REGISTER": False})
    assert results["OUTPUT"] == str(out) and results["NAME"] is None and results["METHOD_USED"] == "bn+pseudo"
    p = read_card(out).provenance
    assert p["task"].startswith("domain adaptation") and p["iterations"] == 2
    assert p["adapted_from"] == str(tiny_model_path) and p["adapted_to"] == [str(target)]
    assert p["class_quota"] is True and p["method"] == "bn+pseudo" and p["source_used"].startswith("none")
    assert p["teacher"] == 0.9 and p["bn_target_share"] == 0.25  # the advanced parameters reach the engine
    assert list(models_folder.iterdir()) == []


def test_adaptmodel_source_folder_needs_a_folder(fbp_provider, tiny_model_path, tmp_path):
    from qgis.core import QgsProcessingException

    target = write_raster(tmp_path / "t.tif", np.zeros((4, 64, 64), np.uint8))
    with pytest.raises(QgsProcessingException, match="source data is 'folder' but no folder was given"):
        _run("adaptmodel", {"TARGETS": [str(target)], "MODEL": str(tiny_model_path), "SOURCE": "folder",
                            "OUTPUT": str(tmp_path / "a.fbpmodel")})


@pytest.fixture
def map_and_reference(tmp_path):
    """A 10 x 10 map (class 2 left, 13 right) and a reference that differs on 12 of 90 labelled pixels."""
    cmap = np.full((10, 10), 2, np.uint8)
    cmap[:, 5:] = 13
    ref = cmap.copy()
    ref[0, :] = 0  # 10 unlabelled pixels: not scored
    ref[1, :4] = 13  # 4 pixels of 13 mapped as 2
    ref[2:10, 9] = 2  # 8 pixels of 2 mapped as 13
    return write_raster(tmp_path / "map.tif", cmap, nodata=0), write_raster(tmp_path / "ref.tif", ref,
                                                                            nodata=0)


def test_assessaccuracy_against_a_reference_raster(fbp_provider, map_and_reference, tmp_path):
    map_path, ref_path = map_and_reference
    out = tmp_path / "report.json"
    results = _run("assessaccuracy", {"INPUT": str(map_path), "REFERENCE_RASTER": str(ref_path),
                                      "COLLAPSE": "none", "OUTPUT": str(out)})
    assert results["OA"] == pytest.approx(78 / 90)
    # reference rows 2 / 13: [[41, 8], [4, 37]] -> IoU 41/53 and 37/49; kappa from the same matrix
    assert results["MIOU"] == pytest.approx((41 / 53 + 37 / 49) / 2)
    pe = (49 * 45 + 41 * 45) / 90**2
    assert results["KAPPA"] == pytest.approx((78 / 90 - pe) / (1 - pe))
    assert results["OUTPUT"] == str(out)
    assert results["CSV"] == str(tmp_path / "report.csv")
    assert results["MARKDOWN"] == str(tmp_path / "report.md")
    report = json.loads(out.read_text())
    assert report["pixels"] == 90 and report["legend"] == "fbp" and report["reference_kind"] == "raster"
    assert report["confusion_matrix"][2][2] == 41 and report["confusion_matrix"][2][13] == 8
    assert report["confusion_matrix"][13][2] == 4 and report["confusion_matrix"][13][13] == 37
    rows = {int(r["index"]): r for r in csv.DictReader((tmp_path / "report.csv").open())}
    assert (rows[2]["reference_pixels"], rows[2]["correct"], rows[13]["map_pixels"]) == ("49", "41", "45")
    assert f"| overall accuracy | {100 * 78 / 90:.2f} % |" in (tmp_path / "report.md").read_text()


def test_assessaccuracy_against_points_with_a_mapping_and_collapse(fbp_provider, map_and_reference, tmp_path):
    from qgis.core import QgsFeature, QgsField, QgsGeometry, QgsPointXY, QgsVectorLayer
    from qgis.PyQt.QtCore import QVariant

    map_path, _ = map_and_reference
    layer = QgsVectorLayer("Point?crs=EPSG:32650", "points", "memory")
    layer.dataProvider().addAttributes([QgsField("id", QVariant.Int), QgsField("cover", QVariant.String)])
    layer.updateFields()
    # pixel (col, row) centres; the map is 2 (paddy field) at cols 0..4 and 13 (lake) at cols 5..9
    points = [((1, 1), "crop"), ((3, 7), "crop"), ((6, 2), "wet"), ((8, 8), "crop"), ((7, 5), None),
              ((2, 4), "dry")]
    feats = []
    for i, ((col, row), value) in enumerate(points):
        f = QgsFeature(layer.fields())
        f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(GT[0] + 4 * col + 2, GT[3] - 4 * row - 2)))
        f.setAttributes([i, value])
        feats.append(f)
    assert layer.dataProvider().addFeatures(feats)[0]
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"to": "fbp", "mapping": {"crop": 2, "wet": 13, "dry": "dry cropland"}}))
    params = {"INPUT": str(map_path), "REFERENCE_VECTOR": layer, "FIELD": "cover", "MAPPING": str(mapping),
              "COLLAPSE": "none", "OUTPUT": str(tmp_path / "pts.json")}
    results = _run("assessaccuracy", params)
    assert results["OA"] == pytest.approx(3 / 5)  # the point without a value is not scored
    report = json.loads((tmp_path / "pts.json").read_text())
    assert report["reference_kind"] == "vector" and report["pixels"] == 5 and report["legend"] == "fbp"
    # in GID-5, paddy field and dry cropland are both farmland: the "dry" point becomes right
    results = _run("assessaccuracy", {**params, "COLLAPSE": "gid5", "OUTPUT": str(tmp_path / "g.json")})
    assert results["OA"] == pytest.approx(4 / 5)
    assert json.loads((tmp_path / "g.json").read_text())["legend"] == "gid5"


def test_assessaccuracy_gives_the_engine_sentence_for_a_bad_map(fbp_provider, map_and_reference, tmp_path):
    from qgis.core import QgsProcessingException

    _, ref_path = map_and_reference
    bad = write_raster(tmp_path / "bad.tif", np.full((10, 10), 30, np.uint8))
    with pytest.raises(QgsProcessingException, match="holds the value 30, which is not an FBP class 0..24"):
        _run("assessaccuracy", {"INPUT": str(bad), "REFERENCE_RASTER": str(ref_path),
                                "OUTPUT": str(tmp_path / "r.json")})


def test_trainsourcemodel_refuses_a_folder_that_is_not_fbp(fbp_provider, tmp_path):
    from qgis.core import QgsProcessingException

    (tmp_path / "not_fbp").mkdir()
    with pytest.raises(QgsProcessingException, match="is not a Five-Billion-Pixels folder"):
        _run("trainsourcemodel", {"SOURCE": str(tmp_path / "not_fbp"), "ARCHITECTURE": "compact", "EPOCHS": 1,
                                  "DEVICE": "cpu", "OUTPUT": str(tmp_path / "m.fbpmodel")})


def test_cancel_reaches_the_engine_and_leaves_no_report(fbp_provider, map_and_reference, tmp_path):
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    map_path, ref_path = map_and_reference
    feedback = QgsProcessingFeedback()
    feedback.cancel()
    with pytest.raises(QgsProcessingException, match="(?i)cancel"):
        processing.run("fbplandcover:assessaccuracy", {"INPUT": str(map_path),
                                                       "REFERENCE_RASTER": str(ref_path),
                                                       "OUTPUT": str(tmp_path / "r.json")}, feedback=feedback)
    assert not list(tmp_path.glob("r.*"))
