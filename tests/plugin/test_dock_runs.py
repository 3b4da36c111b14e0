"""The panel across runs: each run its own named layers (newest on top) with its own area table and a summary
line; the plausibility warning; messages cleared with their cause; choices surviving a plugin reload."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from tests.plugin.conftest import choose_layer, wait_for


def _run(dock) -> bool:
    results = []
    dock.finished.connect(results.append)
    dock.run_button.click()
    wait_for(lambda: results, timeout=300)
    dock.finished.disconnect(results.append)
    return results[0]


def test_two_runs_give_two_named_layers_newest_on_top_each_with_its_table(dock, naip_crop, tmp_path):
    from qgis.core import Qgis, QgsProject
    from qgis.PyQt.QtGui import QGuiApplication

    choose_layer(dock, naip_crop, "naip")
    assert _run(dock), dock.last_error
    assert dock.summary_label.text().startswith("Model tiny; sensor rgbn (chosen by the user (rgbn)); "
                                                "cpu (torch); no adaptation; ")
    first = dock.result_layers[0]
    dock.adapt_check.setChecked(True)
    dock.adapt_effort.setValue(2)
    assert _run(dock), dock.last_error
    summary = dock.summary_label.text()
    assert "; adapted: bn+kl, 2 iteration(s), final pseudo-label share " in summary, summary
    second = dock.result_layers[0]
    group = QgsProject.instance().layerTreeRoot().findGroup("naip")
    names = [node.layer().name() for node in group.findLayers()]
    assert names[0] == second.name() and names[1] == first.name()  # the newest on top
    rejected = "rejected by the guard" in summary  # the name then says the map is the source model's
    what = "source model (bn+kl rejected) · " if rejected else "adapted bn+kl 2 it · "
    assert second.name().startswith("naip · land cover · tiny · " + what)
    assert first.name().startswith("naip · land cover · tiny · not adapted · ")
    assert dock.iface.messageBar().get_messages(Qgis.Success)[-1].startswith(
        "FBP Land Cover:Mapped naip: Model tiny; sensor rgbn")
    # the table follows the selected result layer
    table = dock.area_table
    assert table.title.text() == f"Areas of {second.name()}"
    dock.current_layer_changed(first)
    assert table.title.text() == f"Areas of {first.name()}"
    assert table.path_label.text() == f"Area table file: {first.customProperty('fbp_landcover/areas_csv')}"
    # the total row equals the sum, in km² and in hectares
    for unit, factor in (("km2", 1.0), ("ha", 100.0)):
        table.set_unit(unit)
        lines = table.lines()
        assert lines[0][2] == ("km²" if unit == "km2" else "ha")
        assert lines[-1][1] == "Total"
        assert float(lines[-1][2]) == pytest.approx(sum(float(r["km2"]) for r in table.rows) * factor,
                                                    abs=1e-9 + 0.5 * 10 ** -(4 if unit == "km2" else 2))
        assert float(lines[-1][2]) == pytest.approx(sum(float(c[2]) for c in lines[1:-1]),
                                                    abs=len(lines) * 10 ** -(4 if unit == "km2" else 2))
        assert table.table.item(table.table.rowCount() - 1, 2).text() == lines[-1][2]
    assert float(lines[-1][2]) == pytest.approx(160 * 128 * 25 / 1e4, abs=0.01)  # all pixels, in ha
    shots = os.environ.get("FBP_SCREENSHOT_DIR")  # docs/img/dock.png is taken here: the panel after two runs
    if shots:
        dock.current_layer_changed(second)
        dock.resize(460, 1250)
        QGuiApplication.processEvents()
        assert dock.grab().save(str(Path(shots) / "dock.png"))
        dock.current_layer_changed(first)
    table.copy_button.click()
    assert QGuiApplication.clipboard().text().splitlines()[-1] == "\t".join(lines[-1])
    exported = table.export(str(tmp_path / "areas"))
    assert exported == str(tmp_path / "areas.csv")
    with open(exported, newline="") as f:
        assert list(csv.reader(f)) == lines


def test_an_implausible_sensor_warns_first_and_maps_anyway_on_the_second_click(dock, naip_crop):
    choose_layer(dock, naip_crop, "naip", sensor="sentinel2")
    assert dock.start() is False and dock.task is None
    assert dock.warning_label.isVisible()
    assert dock.warning_label.text().startswith("Check the sensor: The raster holds 8-bit values but the "
                                                "'Sentinel-2 L1C/L2A")
    assert dock.run_button.text() == "Map anyway"
    assert _run(dock), dock.last_error  # the user knows better: it maps
    choose_layer(dock, naip_crop, "naip right", sensor="rgbn")
    assert dock.check_plausibility(dock.layer_combo.currentLayer()) == []
    assert not dock.warning_label.isVisible()


def test_no_model_message_goes_once_a_model_is_added(qgis_iface, qgis_new_project, fbp_provider,
                                                     models_folder, tiny_model_path, clean_settings,
                                                     naip_crop):
    from qgis.core import Qgis

    from fbp_landcover.plugin.dock import LandCoverDock

    qgis_iface.messageBar().clear_messages()
    dock = LandCoverDock(qgis_iface)
    dock.show()
    try:
        choose_layer(dock, naip_crop, "naip")
        assert _run(dock) is False
        assert dock.problem_label.isVisible()
        assert dock.problem_label.text().startswith("No model was given and the model folder")
        assert qgis_iface.messageBar().get_messages(Qgis.Critical) == [
            f"FBP Land Cover:Mapping naip failed: {dock.problem_label.text()}"]
        added = []
        dock.model_added.connect(added.append)
        dock.add_model(str(tiny_model_path))
        wait_for(lambda: added == ["tiny"])
        assert not dock.problem_label.isVisible()
    finally:
        dock.shutdown()
        dock.deleteLater()


def test_choices_survive_a_plugin_unload_and_load(qgis_iface, qgis_new_project, models_folder, clean_settings,
                                                  naip_crop, haiti_crop, tmp_path):
    from qgis.core import QgsProject, QgsRasterLayer

    from fbp_landcover.plugin.main import FbpLandcoverPlugin

    naip = QgsRasterLayer(str(naip_crop), "naip")
    haiti = QgsRasterLayer(str(haiti_crop), "haiti")
    QgsProject.instance().addMapLayers([naip, haiti])
    plugin = FbpLandcoverPlugin(qgis_iface)
    plugin.initGui()
    dock = plugin.dock
    dock.layer_combo.setLayer(naip)
    dock.sensor_combo.setCurrentIndex(dock.sensor_combo.findData("bgrn"))
    dock.layer_combo.setLayer(haiti)
    assert dock.sensor_combo.currentData() == "auto"  # nothing remembered for this file
    dock.adapt_check.setChecked(True)
    dock.adapt_effort.setValue(12)
    dock.extent_combo.setCurrentIndex(dock.extent_combo.findData("canvas"))
    dock.output_widget.setFilePath(str(tmp_path / "out.tif"))
    dock.confidence_check.setChecked(True)
    dock.backend_combo.setCurrentIndex(dock.backend_combo.findData("onnx"))
    dock.area_table.set_unit("ha")
    dock.mask_choice.set_mode("none")
    plugin.unload()

    plugin = FbpLandcoverPlugin(qgis_iface)
    plugin.initGui()
    try:
        dock = plugin.dock
        assert dock.adapt_check.isChecked() and dock.adapt_effort.value() == 12
        assert dock.adapt_effort.isEnabled()
        assert dock.extent_combo.currentData() == "canvas"
        assert dock.output_widget.filePath() == str(tmp_path / "out.tif")
        assert dock.confidence_check.isChecked() and dock.backend_combo.currentData() == "onnx"
        assert dock.area_table.unit == "ha" and dock.mask_choice.mode == "none"
        dock.layer_combo.setLayer(naip)
        assert dock.sensor_combo.currentData() == "bgrn"  # remembered for this file
        dock.layer_combo.setLayer(haiti)
        assert dock.sensor_combo.currentData() == "auto"
    finally:
        plugin.unload()


def test_a_huge_raster_asks_first_with_an_estimate(dock, naip_crop, tmp_path):
    """A VRT claiming 200000 × 200000 pixels: the first click shows the size and the time it would take
    (the nominal rate, then the last plain run's) and starts nothing; the button reads "Map anyway"."""
    from osgeo import gdal

    from fbp_landcover.plugin import dock_settings

    big = tmp_path / "big.vrt"
    src = gdal.Open(str(naip_crop))
    x0, px, _, y0, _, py = src.GetGeoTransform()
    gdal.BuildVRT(str(big), [str(naip_crop)], outputBounds=(x0, y0 + py * 200_000, x0 + px * 200_000, y0))
    choose_layer(dock, big, "big", sensor="rgbn")
    assert dock.start() is False and dock.task is None
    text = dock.warning_label.text()
    assert ("A long run: the raster to map is 200000 × 200000 pixels (40,000 Mpx): at 2.0 Mpx/s (a nominal "
            "CPU rate; the progress bar's estimate follows the real one) that takes about 5.6 h") in text
    assert dock.run_button.text() == "Map anyway"
    dock_settings.save("rate_mpx_s", 4.0)
    assert "at 4.0 Mpx/s (your last run's rate) that takes about 2.8 h" in dock.size_warning(
        dock.layer_combo.currentLayer())
    choose_layer(dock, naip_crop, "naip", sensor="rgbn")
    assert dock.size_warning(dock.layer_combo.currentLayer()) is None
