"""The panel: runs fbplandcover:maplandcover as a task, adds styled layers in a group, shows the area
table."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from fbp_landcover.engine import classes
from tests.plugin.conftest import choose_layer as _choose
from tests.plugin.conftest import wait_for
from tests.plugin.test_map_algorithm import assert_fbp_palette


def test_dock_shows_detection_device_and_models(dock, naip_crop, haiti_crop):
    _choose(dock, haiti_crop, "haiti", sensor=None)
    assert dock.sensor_reason.text().startswith("Detected: rgbn — 4 bands with colour interpretation Red, "
                                                "Green")
    _choose(dock, naip_crop, "naip", sensor=None)  # its bands are tagged Gray, Undefined...: cannot tell
    text = dock.sensor_reason.text()
    assert text.startswith("Not detected: Cannot tell which sensor")
    assert "--sensor" not in text and "custom:" not in text and "(the Sensor box)" in text
    assert text.endswith("or 'Custom band mapping' nir=4,r=3,g=2,b=1.")  # from the raster's bands
    # choosing a sensor replaces the stale "Not detected"
    dock.sensor_combo.setCurrentIndex(dock.sensor_combo.findData("rgbn"))
    assert dock.sensor_reason.text() == "Chosen: Generic 4-band R,G,B,NIR (aerial such as NAIP) [rgbn]"
    assert dock.model_combo.currentData() == "tiny"
    assert dock.model_info.text() == ("Trained on: untrained random weights, made for tests. Its maps are "
                                      "not "
                                      "the land cover of a real place.")
    assert dock.device_label.text().startswith(("CPU", "CUDA"))
    assert not dock.problem_label.isVisible() and dock.run_button.isEnabled()


def test_dock_maps_a_layer_into_a_group_with_the_area_table(dock, naip_crop):
    from qgis.core import QgsProject

    _choose(dock, naip_crop, "naip crop")
    dock.confidence_check.setChecked(True)
    dock.run_button.click()
    assert dock.run_button.text() == "Cancel" and dock.task is not None
    results = []
    dock.finished.connect(results.append)
    wait_for(lambda: results)
    assert results == [True], dock.last_error
    assert dock.run_button.text() == "Map land cover" and dock.progress_bar.value() == 100
    group = QgsProject.instance().layerTreeRoot().findGroup("naip crop")
    names = [node.layer().name() for node in group.findLayers()]
    assert [n.rsplit(" · ", 1)[0] for n in names] == ["naip crop · land cover · tiny · not adapted",
                                                      "naip crop · confidence · tiny · not adapted"]
    layer = group.findLayers()[0].layer()
    assert_fbp_palette(layer)
    assert group.findLayers()[1].layer().renderer().type() == "singlebandpseudocolor"
    # outputs are temporary files by default
    out = Path(dock.outputs["OUTPUT"])
    assert out.is_file() and layer.source() == str(out)
    ds = gdal.Open(str(out))
    arr = ds.GetRasterBand(1).ReadAsArray()
    counts = np.bincount(arr.ravel(), minlength=25)
    present = [k for k in range(1, 25) if counts[k]]
    # the area table: one row per class present, largest first, with swatch, km² and %
    table = dock.area_table.table
    assert table.rowCount() == len(present) + 1  # and the total
    total = table.item(len(present), 0).text(), float(table.item(len(present), 2).text())
    assert total == ("Total", pytest.approx(sum(counts[1:]) * 25 / 1e6, abs=5.01e-5))
    assert float(table.item(len(present), 2).text()) == pytest.approx(
        sum(float(table.item(i, 2).text()) for i in range(len(present))), abs=len(present) * 5.01e-5)
    table.removeRow(len(present))
    rows = [(table.item(i, 0).text(), table.item(i, 1).data(0x0100), float(table.item(i, 2).text()),
             float(table.item(i, 3).text())) for i in range(table.rowCount())]
    by_size = sorted(present, key=lambda k: -counts[k])
    assert [r[0] for r in rows] == [f"{k} {classes.CLASSES[k].name}" for k in by_size]
    assert [r[1] for r in rows] == [classes.CLASSES[k].hex for k in by_size]
    # the panel shows km² to 4 decimals: half a unit of the last digit, plus float representation
    assert [r[2] for r in rows] == pytest.approx([counts[k] * 25 / 1e6 for k in by_size], abs=5.01e-5)
    assert sum(r[3] for r in rows) == pytest.approx(100, abs=0.1 * len(rows))
    json_rows = json.loads(Path(dock.outputs["AREAS"]).with_suffix(".json").read_text())["classes"]
    assert sum(r["pixels"] for r in json_rows) == 160 * 128


def test_cancel_mid_run_leaves_no_layer_and_no_file(dock, shared_data):
    """Press Cancel while the model is mapping: no layer, no output file, reported as cancelled."""
    from qgis.core import Qgis, QgsProject
    from qgis.PyQt.QtCore import Qt

    _choose(dock, shared_data / "naip_nd_2020_rgbn_5m.tif", "naip full")
    mapping_started, cancel_pressed = threading.Event(), threading.Event()

    dock.run_button.click()
    assert dock.task is not None

    def hold(text):  # on the worker thread: wait at the first mapping window until Cancel was pressed
        if text.startswith("Mapping") and not mapping_started.is_set():
            mapping_started.set()
            cancel_pressed.wait(30)

    dock.feedback.stage.connect(hold, Qt.DirectConnection)
    results = []
    dock.finished.connect(results.append)
    wait_for(mapping_started.is_set)
    dock.run_button.click()  # the button reads "Cancel" while running
    cancel_pressed.set()
    wait_for(lambda: results)
    assert results == [False]
    assert dock.stage_label.text().startswith("Cancelled")
    assert dock.run_button.text() == "Map land cover"
    assert QgsProject.instance().layerTreeRoot().findGroup("naip full") is None
    assert [lyr.name() for lyr in QgsProject.instance().mapLayers().values()] == ["naip full"]
    for key in ("OUTPUT", "AREAS"):
        path = Path(dock.outputs[key])
        assert not path.exists(), key
        assert not [p for p in path.parent.glob("*") if p.name.startswith(path.stem)], key
    assert dock.area_table.table.rowCount() == 0
    assert dock.stage_label.text() == "Cancelled; no output was written."
    assert dock.iface.messageBar().get_messages(Qgis.Info) == [
        "FBP Land Cover:Mapping naip full was cancelled; no output was written."]
    assert dock.iface.messageBar().get_messages(Qgis.Critical) == []
    assert not dock.problem_label.isVisible()


def test_missing_engine_shows_the_install_box_in_the_dock(qgis_iface, qgis_new_project, fbp_provider,
                                                          models_folder, monkeypatch, tmp_path):
    from fbp_landcover.engine import torch_import
    from fbp_landcover.plugin import engine_check, engine_folder
    from fbp_landcover.plugin.dock import LandCoverDock

    def no_torch():
        raise OSError("libtorch_cpu.so: cannot open shared object file")

    monkeypatch.setattr(torch_import, "import_torch", no_torch)
    monkeypatch.setattr(engine_folder, "profile_dir", lambda: tmp_path)
    engine_check.reset()
    try:
        widget = LandCoverDock(qgis_iface)  # top-level: the stub main window is never shown
        widget.show()
        box = widget.engine_box
        text = box.problem_label.text()
        assert text.startswith("The FBP Land Cover engine is not installed for this QGIS yet: PyTorch "
                               "(torch)")
        assert "libtorch_cpu.so" in text and "'Install the engine'" in text and "Traceback" not in text
        assert str(tmp_path / "python" / "dependencies" / "fbp_landcover") in text
        assert box.isVisible() and box.install_button.isEnabled()
        assert box.install_button.text() == "Install the engine"
        assert not widget.problem_label.isVisible()
        assert not widget.run_button.isEnabled() and not widget.add_model_button.isEnabled()
        assert widget.device_label.text().startswith("none")
        assert widget.start() is False and widget.task is None
        widget.shutdown()
        widget.deleteLater()
    finally:
        engine_check.reset()


def test_diagnostics_button_opens_copyable_text(dock):
    from qgis.PyQt.QtGui import QGuiApplication

    dock.diagnostics_button.click()
    dialog = dock._diagnostics
    assert "Engine version:" in dialog.text.toPlainText()
    dialog.copy_button.click()
    assert QGuiApplication.clipboard().text() == dialog.text.toPlainText()
    dialog.close()


def test_dock_parameters_follow_the_choices(dock, naip_crop, tmp_path):
    from qgis.core import QgsProcessingContext

    layer = _choose(dock, naip_crop, "naip crop")
    params = dock.parameters(QgsProcessingContext())
    assert params["INPUT"] == layer.id() and params["SENSOR"] == "rgbn" and params["MODEL"] == "tiny"
    assert "ADAPT_ITERATIONS" not in params and "CONFIDENCE" not in params
    assert params["OUTPUT"].endswith("naip_crop_landcover.tif")
    assert params["QUALITY_MASK"] == "auto" and "MASK" not in params  # the product's own mask by default
    assert dock.mask_choice.layer_combo.isHidden()
    dock.mask_choice.set_mode("layer")
    assert not dock.mask_choice.layer_combo.isHidden()
    dock.mask_choice.layer_combo.setLayer(layer)
    params = dock.parameters(QgsProcessingContext())
    assert params["QUALITY_MASK"] == "auto" and params["MASK"] == layer.id()
    dock.mask_choice.set_mode("none")
    params = dock.parameters(QgsProcessingContext())
    assert params["QUALITY_MASK"] == "none" and "MASK" not in params
    dock.adapt_check.setChecked(True)
    dock.adapt_effort.setValue(7)
    dock.output_widget.setFilePath(str(tmp_path / "map"))
    params = dock.parameters(QgsProcessingContext())
    assert params["ADAPT_ITERATIONS"] == 7
    assert params["OUTPUT"] == str(tmp_path / "map.tif")
    assert params["AREAS"] == str(tmp_path / "map_areas.csv")


def test_get_models_lists_the_authors_checkpoints_and_adds_a_downloaded_one(dock, tmp_path, monkeypatch):
    from qgis.PyQt.QtGui import QDesktopServices

    from fbp_landcover.engine.models import build_model
    from fbp_landcover.engine.models.authors import AUTHORS_MODELS_PAGE
    from fbp_landcover.engine.models.card import ModelCard
    from tests.models import authors_checkpoint

    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toString()) or True)
    dock.get_models_button.click()
    dialog = dock._get_models
    cells = [[dialog.table.item(r, c).text() for c in range(4)] for r in range(dialog.table.rowCount())]
    assert cells[0] == ["Beijing", "Sentinel-2 L1C/L2A", "10 m", "unet_beijing.pth.tar"]
    assert cells[3] == ["Chengdu", "PlanetScope surface reflectance", "3 m (mapped at 4 m)",
                        "unet_chengdu.pth.tar"]
    assert [row[0] for row in cells] == ["Beijing", "Guangzhou", "Wuhan", "Chengdu", "Shanghai"]
    dialog.open_button.click()
    assert opened == [AUTHORS_MODELS_PAGE]
    state = build_model(ModelCard(name="u")).state_dict()
    downloaded = authors_checkpoint(tmp_path / "unet_wuhan.pth.tar", state)
    added = []
    dock.model_added.connect(added.append)
    dialog.model_file_chosen.emit(str(downloaded))  # what 'Add a downloaded file…' emits after its dialog
    wait_for(lambda: added == ["unet_wuhan"], timeout=300)
    assert dock.model_combo.currentData() == "unet_wuhan"
    assert dock.model_info.text().startswith("Trained on: Five-Billion-Pixels (Gaofen-2, source) with DPA "
                                             "adaptation to the Wuhan target image")
    assert dock.stage_label.text().startswith("Added model unet_wuhan (without a source memory; fast CPU "
                                              "form:")
    dialog.close()


def test_a_sentinel2_product_layer_is_described_on_the_sensor_line(dock, products):
    """A layer QGIS opened from a SAFE (its 10 m subdataset): the sensor line says what the product is, the
    bands by name, the offset, the mask found and the geometry, in words; a long path never widens the
    panel (the label ignores its width hint)."""
    from qgis.PyQt.QtWidgets import QSizePolicy

    from tests.delivered_fixtures import L2A
    from tests.plugin.conftest import choose_layer

    xml = products / L2A / "MTD_MSIL2A.xml"
    choose_layer(dock, f"SENTINEL2_L2A:{xml}:10m:EPSG_32634", "s2 10m", sensor=None)
    text = dock.sensor_reason.text()
    assert text.startswith("Detected: sentinel2 — a Sentinel-2 L2A product (baseline 05.09, tile T34UCF, "
                           "2023-08-23): 10 m subdataset EPSG:32634, NIR,R,G,B = B8,B4,B3,B2"), text
    assert "reflectance = (DN -1000) / 10000" in text and "mask: SCL found" in text
    assert dock.sensor_reason.sizePolicy().horizontalPolicy() == QSizePolicy.Ignored
