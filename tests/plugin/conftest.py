"""Fixtures for the plugin tests (pytest-qgis: a real QGIS application, headless)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from osgeo import gdal

gdal.UseExceptions()


def wait_for(predicate, timeout: float = 120.0) -> None:
    """Process Qt events until ``predicate()`` is true (tasks report on the main thread)."""
    from qgis.PyQt.QtCore import QCoreApplication

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s")
        QCoreApplication.processEvents()
        time.sleep(0.01)


_PROVIDERS: list = []  # Python must keep its provider objects alive (the registry holds only the C++ side)


@pytest.fixture
def fbp_provider(qgis_processing):
    """The fbplandcover provider, registered (again, if a test removed it)."""
    from qgis.core import QgsApplication

    from fbp_landcover.plugin.provider import FbpProvider

    registry = QgsApplication.processingRegistry()
    if registry.providerById("fbplandcover") is None:
        _PROVIDERS.append(FbpProvider())
        assert registry.addProvider(_PROVIDERS[-1])
    return registry.providerById("fbplandcover")


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    from tests.models import tiny_checkpoint

    return tiny_checkpoint(tmp_path_factory.mktemp("models") / "tiny.fbpmodel")


@pytest.fixture
def models_folder(tmp_path, monkeypatch) -> Path:
    """An empty model folder standing in for <QGIS profile>/fbp_landcover/models."""
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setattr("fbp_landcover.plugin.models_folder.models_dir", lambda: str(folder))
    return folder


def _crop(src: Path, dst: Path, window: list[int]) -> Path:
    gdal.Translate(str(dst), str(src), srcWin=window)
    return dst


@pytest.fixture(scope="session")
def naip_crop(shared_data, tmp_path_factory) -> Path:
    """A 160 x 128 window of the real NAIP raster (R,G,B,NIR uint8, 5 m, EPSG:26914), no nodata inside."""
    return _crop(shared_data / "naip_nd_2020_rgbn_5m.tif", tmp_path_factory.mktemp("naip") / "naip_crop.tif",
                 [300, 200, 160, 128])


@pytest.fixture(scope="session")
def haiti_crop(shared_data, tmp_path_factory) -> Path:
    """A 128 x 96 window of the real Haiti chip (R,G,B,NIR uint8, 5 m, EPSG:32618)."""
    return _crop(shared_data / "haiti_rgbn_5m.tif", tmp_path_factory.mktemp("haiti") / "haiti_crop.tif",
                 [100, 100, 128, 96])


@pytest.fixture
def clean_settings():
    """No choices remembered from an earlier test (QgsSettings persist in .qgis-settings)."""
    from qgis.core import QgsSettings

    QgsSettings().remove("fbp_landcover/dock")
    yield
    QgsSettings().remove("fbp_landcover/dock")


@pytest.fixture
def dock(qgis_iface, qgis_new_project, fbp_provider, models_folder, tiny_model_path, clean_settings):
    from fbp_landcover.plugin.dock import LandCoverDock

    qgis_iface.messageBar().clear_messages()
    widget = LandCoverDock(qgis_iface)  # top-level: the stub main window is never shown
    widget.show()  # checks the engine, fills the models and the device line
    added = []
    widget.model_added.connect(added.append)
    assert widget.add_model(str(tiny_model_path)) is True  # fbplandcover:addmodel runs as a task
    wait_for(lambda: added == ["tiny"])
    assert widget.model_combo.currentData() == "tiny"
    yield widget
    widget.shutdown()
    widget.deleteLater()


def choose_layer(dock, raster: Path, name: str, sensor: str | None = "rgbn"):
    from qgis.core import QgsProject, QgsRasterLayer

    layer = QgsRasterLayer(str(raster), name)
    assert layer.isValid()
    QgsProject.instance().addMapLayer(layer)
    dock.layer_combo.setLayer(layer)
    if sensor:
        dock.sensor_combo.setCurrentIndex(dock.sensor_combo.findData(sensor))
    dock.backend_combo.setCurrentIndex(dock.backend_combo.findData("torch"))  # no ONNX export (seconds)
    return layer
