"""Inside the real QGIS desktop: map a raster through the FBP Land Cover panel and save a PNG of the window.

Run it through scripts/qgis_screenshot.sh (Xvfb, a clean profile with the plugin enabled, a model):
    scripts/qgis_screenshot.sh [out.png] [model file]
It reads FBP_SHOT_OUT, FBP_SHOT_RASTER, FBP_SHOT_MODEL and FBP_SHOT_SENSOR from the environment.
"""

import os
import time

from qgis.core import QgsProject
from qgis.PyQt.QtCore import QSize, QTimer
from qgis.utils import iface, plugins

OUT = os.environ.get("FBP_SHOT_OUT", "artifacts/qgis_dock.png")
RASTER = os.environ["FBP_SHOT_RASTER"]
MODEL = os.environ["FBP_SHOT_MODEL"]
SENSOR = os.environ.get("FBP_SHOT_SENSOR", "rgbn")
T0 = time.monotonic()
_keep = []


def log(text):
    print(f"[screenshot {time.monotonic() - T0:5.1f} s] {text}", flush=True)


def fail(text):
    log(f"FAILED: {text}")
    os._exit(1)


def start():
    plugin = plugins.get("fbp_landcover")
    if plugin is None or plugin.dock is None:
        if time.monotonic() - T0 > 60:
            fail("the fbp_landcover plugin did not load (is it enabled in this profile?)")
        QTimer.singleShot(500, start)
        return
    window = iface.mainWindow()
    window.resize(QSize(1600, 1000))
    window.showNormal()
    layer = iface.addRasterLayer(RASTER, os.path.splitext(os.path.basename(RASTER))[0])
    if layer is None or not layer.isValid():
        fail(f"cannot load {RASTER}")
    plugin.map_action.setChecked(True)  # shows the panel (checks the engine, fills models and device)
    dock = plugin.dock
    name = os.path.basename(MODEL).split(".")[0]
    if dock.model_combo.findData(name) < 0:
        dock.model_added.connect(lambda _name: choose(dock, layer, name))
        if not dock.add_model(MODEL):
            fail(f"cannot add the model {MODEL}: {dock.stage_label.text()}")
        return
    choose(dock, layer, name)


def choose(dock, layer, name):
    if dock.model_combo.findData(name) < 0:
        fail(f"the model {name} was not added: {dock.stage_label.text()}")
    dock.model_combo.setCurrentIndex(dock.model_combo.findData(name))
    dock.layer_combo.setLayer(layer)
    dock.sensor_combo.setCurrentIndex(dock.sensor_combo.findData(SENSOR))
    dock.backend_combo.setCurrentIndex(dock.backend_combo.findData("torch"))
    dock.finished.connect(lambda ok: done(ok, dock))
    log("pressing 'Map land cover'")
    dock.run_button.click()


def done(ok, dock):
    log(f"task finished: {ok}; {dock.stage_label.text()}")
    if not ok:
        fail(dock.last_error or dock.stage_label.text())
    layers = dock.result_layers
    iface.setActiveLayer(layers[0])
    iface.mapCanvas().setExtent(layers[0].extent())
    iface.mapCanvas().refresh()
    QTimer.singleShot(4000, shoot)


def shoot():
    iface.messageBar().clearWidgets()  # "Open Sans font installation failed" when offline
    canvas = iface.mapCanvas()
    canvas.waitWhileRendering()
    os.makedirs(os.path.dirname(os.path.abspath(OUT)), exist_ok=True)
    ok = iface.mainWindow().grab().save(OUT)
    log(f"saved {OUT}: {ok}; layers: {[lyr.name() for lyr in QgsProject.instance().mapLayers().values()]}")
    os._exit(0 if ok else 1)


QTimer.singleShot(300000, lambda: fail("timed out after 300 s"))
QTimer.singleShot(1000, start)
