"""A tour of the FBP Land Cover panel and dialogs in the real QGIS desktop: PNGs in artifacts/tour/.

Run through scripts/desktop_tour.sh (Xvfb, a clean profile with the plugin enabled, a tiny random model).
Reads TOUR_OUT, TOUR_RASTER (a small R,G,B,NIR uint8 raster), TOUR_S2 (a Sentinel-2 MTD_MSIL2A.xml) and
TOUR_MODEL from the environment. Shots (a failed one is logged and the tour goes on):
  01_two_runs           whole window: the same layer mapped twice (plain, then adapted 2 it); the Layers panel
                        names both (newest on top), the panel's summary names the adaptation
  02_summary_adapted    the panel after the adapted run: its summary line
  06_area_table[_..]    the panel's area table after that run (_total: scrolled down; _ha: in ha): total row,
                        unit switch, Copy/Export, CSV path
  10b_success_message   the message bar (cropped) after the successful run; _next: after popping the top one
  04_plausibility       sensor "sentinel2" on the uint8 NAIP raster, one start(): orange warning, "Map anyway"
  03_midrun[_b]         an adapted run 5 s and 9 s after start: the stage line and the one estimate
  10_cancelled[_bar]    that run cancelled: the panel and the message bar say "cancelled"
  05_settings_restored  adapt on 12 it, confidence, mask none, unit ha; plugin.unload(); initGui(): the new
                        panel
  11_sentinel2[_xml]    the panel with the S2 L2A 10 m subdataset (the MTD XML itself if QGIS opens it), auto
  07_processing_dialog  screen: the "Map land cover" Processing dialog with the Sensor list open
  08_batch_dialog       screen: its batch dialog (column titles, the Model column)
  09_tabified[_short]   whole window: the panel tabified with the Processing toolbox; and floating 420x500
"""

import os
import time
import traceback

from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import QRect, QSize, Qt, QTimer
from qgis.PyQt.QtWidgets import QApplication, QComboBox, QDockWidget
from qgis.utils import iface, plugins

OUT = os.environ.get("TOUR_OUT", "artifacts/tour")
RASTER, S2, MODEL = os.environ["TOUR_RASTER"], os.environ["TOUR_S2"], os.environ["TOUR_MODEL"]
T0 = time.monotonic()
STEPS, state, keep = [], {"i": -1, "token": 0}, {}


def log(text):
    print(f"[tour {time.monotonic() - T0:6.1f} s] {text}", flush=True)


def step(fn):
    STEPS.append(fn)
    return fn


def advance(delay=500):
    """Go to the next step after ``delay`` ms (each step ends by calling this, or its watchdog does)."""
    state["token"] += 1
    token = state["token"]
    QTimer.singleShot(delay, lambda: run_step(token))


def run_step(token):
    if token != state["token"]:
        return
    state["i"] += 1
    if state["i"] >= len(STEPS):
        log("tour done")
        os._exit(0)
    fn = STEPS[state["i"]]
    log(f"step {fn.__name__}")
    QTimer.singleShot(150000, lambda: token == state["token"]
                      and (log(f"TIMEOUT in {fn.__name__}"), advance()))
    try:
        fn()
    except Exception:
        log(f"FAILED {fn.__name__}:\n{traceback.format_exc()}")
        advance()


def later(ms, *fns):
    """Call ``fns`` in turn after ``ms`` ms; an exception is logged and the tour goes to the next step."""
    def go():
        try:
            for fn in fns:
                fn()
        except Exception:
            log(f"FAILED in a callback of {STEPS[state['i']].__name__}:\n{traceback.format_exc()}")
            advance()
    QTimer.singleShot(ms, go)


def save(pixmap, name):
    path = os.path.join(OUT, f"{name}.png")
    log(f"saved {path}: {pixmap.save(path)} ({pixmap.width()}x{pixmap.height()})")


def window(name):
    save(iface.mainWindow().grab(), name)


def panel(name):
    save(dock().grab(), name)


def screen(name):
    save(QApplication.primaryScreen().grabWindow(0), name)


def bar_crop(name):
    """The message bar with a little of the window around it."""
    bar, win = iface.messageBar(), iface.mainWindow()
    top = bar.mapTo(win, bar.rect().topLeft())
    save(win.grab().copy(QRect(0, max(top.y() - 40, 0), win.width(), bar.height() + 80)), name)


def dock():
    return plugins["fbp_landcover"].dock


def once(signal, fn):
    def wrapper(*args):
        signal.disconnect(wrapper)
        fn(*args)
    signal.connect(wrapper)


def run_dock(adapt, iterations, then):
    d = dock()
    d.adapt_check.setChecked(adapt)
    d.adapt_effort.setValue(iterations)
    iface.messageBar().clearWidgets()
    once(d.finished, lambda ok: (log(f"run finished {ok}: {d.stage_label.text()} | {d.summary_label.text()}"),
                                 then(ok)))
    log(f"start (adapt {adapt}, {iterations} it): {d.start(force=True)}")


def choose_sensor(sensor):
    d = dock()
    d.sensor_combo.setCurrentIndex(d.sensor_combo.findData(sensor))


@step
def setup():
    plugin = plugins.get("fbp_landcover")
    if plugin is None or plugin.dock is None:
        if time.monotonic() - T0 > 60:
            raise RuntimeError("the fbp_landcover plugin did not load")
        state["i"] -= 1
        return advance(500)
    win = iface.mainWindow()
    win.resize(QSize(1600, 1000))
    log(f"window minimum size hint {win.minimumSizeHint()}, panel {plugin.dock.minimumSizeHint()}")
    win.showNormal()
    keep["naip"] = iface.addRasterLayer(RASTER, "naip_600")
    plugin.map_action.setChecked(True)
    d = plugin.dock
    once(d.model_added, lambda name: (log(f"model added: {name}"), pick_model(name)))
    if not d.add_model(MODEL):
        raise RuntimeError(f"cannot add {MODEL}: {d.stage_label.text()}")


def pick_model(name):
    d = dock()
    d.model_combo.setCurrentIndex(d.model_combo.findData(name))
    d.layer_combo.setLayer(keep["naip"])
    choose_sensor("rgbn")
    d.backend_combo.setCurrentIndex(d.backend_combo.findData("torch"))
    advance()


def tidy_layers_panel():
    """Groups open, legends (24 classes each) closed, the Layers panel wide enough for the names."""
    win = iface.mainWindow()
    win.resizeDocks([win.findChild(QDockWidget, "Layers")], [700], Qt.Horizontal)
    for node in QgsProject.instance().layerTreeRoot().findLayers():
        node.setExpanded(False)
    for group in QgsProject.instance().layerTreeRoot().findGroups():
        group.setExpanded(True)


def to_area_table():
    dock().scroll.ensureWidgetVisible(dock().area_table.path_label)


@step
def shot_01_02_06_10b():
    def shots(ok):
        tidy_layers_panel()
        if dock().result_layers:
            iface.setActiveLayer(dock().result_layers[0])
        bar = iface.messageBar()
        later(1500, lambda: window("01_two_runs"), lambda: bar_crop("10b_success_message"), bar.popWidget,
              lambda: bar_crop("10b_success_message_next"), lambda: panel("02_summary_adapted"),
              to_area_table, lambda: panel("06_area_table"), dock().area_table.table.scrollToBottom,
              lambda: panel("06_area_table_total"), lambda: dock().area_table.set_unit("ha"))
        later(1900, lambda: panel("06_area_table_ha"), advance)
    iface.mainWindow().resize(QSize(1600, 1000))
    log(f"window size {iface.mainWindow().size()}")
    run_dock(False, 50, lambda ok: later(1500, lambda: run_dock(True, 2, shots)))


@step
def shot_04():
    d = dock()
    d.scroll.verticalScrollBar().setValue(0)  # 06 scrolled down to the area table
    choose_sensor("sentinel2")
    log(f"start() with sentinel2: {d.start()}; button '{d.run_button.text()}'; {d.warning_label.text()}")
    later(500, lambda: panel("04_plausibility"), lambda: choose_sensor("rgbn"), advance)


@step
def shot_03_10():
    d = dock()

    def cancelled(ok):
        later(800, lambda: window("10_cancelled"), lambda: bar_crop("10_cancelled_bar"), advance)

    def midrun(tries=60):  # wait (up to 30 s) for the adaptation iterations, then two shots and cancel
        if not d.stage_label.text().startswith("Adapting") and tries and d.task is not None:
            return later(500, lambda: midrun(tries - 1))
        def shot(name):
            panel(name)
            log(f"{name}: '{d.stage_label.text()}' / '{d.eta_label.text()}'")
        later(0, lambda: shot("03_midrun"))
        later(2500, lambda: shot("03_midrun_b"), lambda: log("cancel"), d.cancel)
    run_dock(True, 300, cancelled)
    later(1500, midrun)


@step
def shot_05():
    d, plugin = dock(), plugins["fbp_landcover"]
    d.adapt_check.setChecked(True)
    d.adapt_effort.setValue(12)
    d.confidence_check.setChecked(True)
    d.mask_choice.set_mode("none")
    d.area_table.set_unit("ha")
    plugin.unload()
    plugin.initGui()
    plugin.map_action.setChecked(True)
    d = plugin.dock
    d.layer_combo.setLayer(keep["naip"])
    log(f"restored: adapt {d.adapt_check.isChecked()} {d.adapt_effort.value()}, confidence "
        f"{d.confidence_check.isChecked()}, mask {d.mask_choice.mode}, unit {d.area_table.unit}")
    later(2000, lambda: panel("05_settings_restored"), reset_choices, advance)


def reset_choices():
    d = dock()
    d.adapt_check.setChecked(False)
    d.confidence_check.setChecked(False)
    d.mask_choice.set_mode("auto")
    d.area_table.set_unit("km2")


@step
def shot_11():
    """The 10 m subdataset (what QGIS's sublayer dialog offers first), then the MTD XML as given."""
    project, root, d = QgsProject.instance(), QgsProject.instance().layerTreeRoot(), dock()
    for name, uri in (("11_sentinel2", f"SENTINEL2_L2A:{S2}:10m:EPSG_32634"), ("11_sentinel2_xml", S2)):
        title = os.path.basename(os.path.dirname(S2))[:26] + (" 10m" if "10m" in uri else "")
        layer = QgsRasterLayer(uri, title)
        log(f"{uri}: valid {layer.isValid()}, {layer.bandCount()} bands, {layer.width()}x{layer.height()}")
        if not layer.isValid():
            continue
        project.addMapLayer(layer, False)
        root.insertLayer(0, layer).setItemVisibilityChecked(False)  # no rendering of 10980² zeros
        keep[name] = layer
    for i, name in enumerate(n for n in ("11_sentinel2", "11_sentinel2_xml") if n in keep):
        QTimer.singleShot(1500 * i, lambda name=name: d.layer_combo.setLayer(keep[name]))
        QTimer.singleShot(1500 * i + 1200, lambda name=name: (
            log(f"{name}: sensor {d.sensor_combo.currentData()}; {d.sensor_reason.text()}"), panel(name)))
    later(3200, lambda: d.layer_combo.setLayer(keep["naip"]), advance)


@step
def shot_07():
    import processing

    dialog = keep["dialog"] = processing.createAlgorithmDialog("fbplandcover:maplandcover")
    dialog.resize(1200, 860)
    dialog.move(150, 60)
    dialog.show()
    combos = {c.itemText(0)[:4]: c for c in dialog.findChildren(QComboBox) if c.count()
              and (c.itemText(0).startswith("auto — detect") or c.findText("tiny") >= 0)}
    log(f"sensor list: {[combos['auto'].itemText(i) for i in range(combos['auto'].count())]}")
    items = [combos[k].itemText(i) for k in combos if k != "auto" for i in range(combos[k].count())]
    log(f"model list: {items}")

    def popup(key, name):
        return (lambda: combos[key].showPopup(), lambda: QTimer.singleShot(800, lambda: (
            screen(name), combos[key].hidePopup())))
    model = next((k for k in combos if k != "auto"), "auto")
    later(1500, lambda: screen("07_processing_dialog_closed"), *popup("auto", "07_processing_dialog"))
    later(3500, *popup(model, "07b_processing_model_list"))
    later(5500, dialog.close, advance)


@step
def shot_08():
    from processing.gui.BatchAlgorithmDialog import BatchAlgorithmDialog
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().createAlgorithmById("fbplandcover:maplandcover")
    dialog = keep["batch"] = BatchAlgorithmDialog(alg, iface.mainWindow())
    dialog.resize(1500, 700)
    dialog.move(40, 100)
    dialog.show()

    def run_batch():
        """Two rows, the optional Confidence left empty (point 7: no false "not correctly generated")."""
        # the values as the dialog's widgets hold them: the enum's "id — name" text, a registered model
        rows = [{"PARAMETERS": {"INPUT": RASTER, "SENSOR": "rgbn — Generic 4-band R/G/B/NIR", "MODEL": "tiny",
                                "BACKEND": "torch"},
                 "OUTPUTS": {"OUTPUT": os.path.join(OUT, f"batch_{i}.tif")}} for i in (1, 2)]
        dialog.mainWidget().load_batch_file_3_40_version({"rows": rows})
        later(800, lambda: screen("08b_batch_filled"), dialog.runAlgorithm,
              lambda: wait_batch(dialog, time.monotonic()))
    later(1500, lambda: screen("08_batch_dialog"), run_batch)


def wait_batch(dialog, t0):
    done = all(os.path.exists(os.path.join(OUT, f"batch_{i}.tif")) for i in (1, 2))
    if done or time.monotonic() - t0 > 120:
        log(f"batch outputs written: {done}")
        later(3000, lambda: screen("08c_batch_log"), dialog.close, advance)
    else:
        QTimer.singleShot(1000, lambda: wait_batch(dialog, t0))


@step
def shot_09():
    win, d = iface.mainWindow(), dock()
    toolbox = win.findChild(QDockWidget, "ProcessingToolbox")
    log(f"toolbox dock: {toolbox}")
    toolbox.show()
    win.tabifyDockWidget(toolbox, d)
    d.show()
    d.raise_()

    def short():
        log(f"scroll bar visible: {d.scroll.verticalScrollBar().isVisible()}")
        window("09_tabified")
        d.setFloating(True)
        d.resize(420, 500)
        later(1000, lambda: log(f"short: scroll bar {d.scroll.verticalScrollBar().isVisible()}"),
              lambda: panel("09_short"), advance)
    later(1500, short)


QTimer.singleShot(900000, lambda: (log("tour timed out after 900 s"), os._exit(1)))
os.makedirs(OUT, exist_ok=True)
iface.messageBar().clearWidgets()
advance(1000)
