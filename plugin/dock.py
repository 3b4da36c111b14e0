"""The FBP Land Cover panel: collects parameters, runs fbplandcover:maplandcover as a task, shows the result.

Nothing here touches widgets from the worker thread: the task's feedback reports through signals
(queued to the main thread) and results are handled in the task's ``executed`` signal, which QGIS emits
on the main thread.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateTransform,
    QgsMapLayerProxyModel,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsReferencedRectangle,
    QgsTask,
)
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt, QTimer, pyqtSignal
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from . import dock_settings, engine_check, run_summary, styling
from .area_table import AREAS_CSV, AREAS_JSON, AreaTable
from .engine_box import EngineBox
from .mask_choice import MaskChoice
from .messages import for_panel
from .tasks import TaskFeedback as DockFeedback

ALGORITHM_ID = "fbplandcover:maplandcover"
MESSAGE_TITLE = "FBP Land Cover"


class LandCoverDock(QDockWidget):
    """The panel. ``run_clicked`` starts (or, while running, cancels) the mapping task."""

    finished = pyqtSignal(bool)  # emitted on the main thread when a run ended (True = layers added)
    model_added = pyqtSignal(str)  # a model was added to the folder (its registered name)

    def __init__(self, iface, parent=None) -> None:
        super().__init__("FBP Land Cover", parent)
        self.setObjectName("FbpLandCoverDock")
        self.iface = iface
        self.task = None
        self.context = None
        self.feedback = None
        self.outputs: dict[str, str | None] = {}
        self.last_error = ""
        self.result_layers: list[QgsRasterLayer] = []
        self.warnings: list[str] = []
        self._warned_for = None  # (layer source, sensor spec) whose warnings were shown: the next click runs
        self._problem_cause = ""  # what the shown problem is about ("model", "sensor"): cleared with it
        self._started = 0.0
        self._mapping_started: float | None = None  # when the run's "Mapping" stage began
        self._engine_checked = False
        self._add_run = None
        self.estimate = None
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._show_estimate)
        self._build()
        dock_settings_restore(self)
        self.layer_combo.layerChanged.connect(self._layer_changed)
        self._layer_changed(self.layer_combo.currentLayer())
        self._watch_current_layer(True)
        active = iface.activeLayer() if iface is not None and hasattr(iface, "activeLayer") else None
        self.current_layer_changed(active)  # after a plugin reload: the selected result layer's table

    # ---- widgets ------------------------------------------------------------------------------
    def _build(self) -> None:
        body = QWidget()
        outer = QVBoxLayout(body)
        self._build_problem_label(outer)
        form = QFormLayout()
        self._build_input_rows(form)
        self._build_model_rows(form)
        self._build_output_rows(form)
        outer.addLayout(form)
        self._build_run_rows(outer)
        self.area_table = AreaTable()
        self.area_table.unit_combo.currentIndexChanged.connect(
            lambda: dock_settings.save("area_unit", self.area_table.unit))
        outer.addWidget(self.area_table, 1)
        buttons = QHBoxLayout()
        self.diagnostics_button = QPushButton("Diagnostics…")
        self.diagnostics_button.setToolTip("What the engine sees: versions, device, model folder, with a "
                                           "Copy button for bug reports; repair or remove the engine")
        self.diagnostics_button.clicked.connect(self.show_diagnostics)
        self.help_button = QPushButton("Help")
        self.help_button.setToolTip("Open the FBP Land Cover help page: the panel, sensors, adaptation, "
                                    "outputs, batch and models")
        self.help_button.clicked.connect(self.show_help)
        buttons.addWidget(self.diagnostics_button)
        buttons.addWidget(self.help_button)
        outer.addLayout(buttons)
        # stacked with other panels, the wrapped lines scroll instead of being cut off
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)  # lines wrap to the panel's width
        for combo in (self.sensor_combo, self.model_combo, self.extent_combo, self.backend_combo):
            combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(12)
        self.scroll.setFrameShape(QScrollArea.NoFrame)
        # a long word (a product's subdataset path, a traceback) wraps at the panel's width instead of
        # widening the panel's contents past its right edge
        for label in (self.problem_label, self.warning_label, self.sensor_reason, self.model_info,
                      self.device_label, self.stage_label, self.eta_label, self.summary_label):
            label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.scroll.setWidget(body)
        self.setWidget(self.scroll)

    def _build_problem_label(self, outer: QVBoxLayout) -> None:
        """The red sentence shown when the engine cannot run or a run failed; the plausibility warning."""
        self.problem_label = QLabel()
        self.problem_label.setWordWrap(True)
        self.problem_label.setStyleSheet("color: #b00020;")
        self.problem_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.problem_label.hide()
        outer.addWidget(self.problem_label)
        self.warning_label = QLabel()
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet("color: #8a5a00;")
        self.warning_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.warning_label.hide()
        outer.addWidget(self.warning_label)
        self.engine_box = EngineBox()
        self.engine_box.hide()
        self.engine_box.engine_changed.connect(self.on_engine_changed)
        outer.addWidget(self.engine_box)

    def _build_input_rows(self, form: QFormLayout) -> None:
        """Input raster, sensor (with the detection's reason) and a custom band mapping."""
        self.layer_combo = QgsMapLayerComboBox()
        self.layer_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.layer_combo.setToolTip("The raster to map: near-infrared, red, green and blue bands are needed")
        form.addRow("Input raster", self.layer_combo)

        self.sensor_combo = QComboBox()
        self.sensor_combo.addItem("Auto-detect", "auto")
        from ..engine.io.sensors import PROFILES

        for name, profile in PROFILES.items():
            self.sensor_combo.addItem(f"{profile.title} [{name}]", name)
        self.sensor_combo.addItem("Custom band mapping", "custom")
        self.sensor_combo.setToolTip("The sensor that took the image: it decides which bands are NIR, R, G, "
                                     "B and how values are scaled. Remembered for this file when chosen")
        self.sensor_combo.currentIndexChanged.connect(self._sensor_changed)
        form.addRow("Sensor", self.sensor_combo)
        self.sensor_reason = QLabel()
        self.sensor_reason.setWordWrap(True)
        form.addRow("", self.sensor_reason)
        self.custom_mapping = QLineEdit()
        self.custom_mapping.setPlaceholderText("nir=4,r=1,g=2,b=3[,scale=255]")
        self.custom_mapping.setToolTip("Which band is which (band numbers from 1), and optionally the value "
                                       "that means full brightness (scale=255 for 8-bit, 4095 for 12-bit)")
        self.custom_mapping.hide()
        form.addRow("", self.custom_mapping)

    def _build_model_rows(self, form: QFormLayout) -> None:
        """The model (and adding one) and quick adaptation."""
        model_row = QHBoxLayout()
        self.model_combo = QComboBox()
        self.model_combo.setToolTip("The models in the model folder of your QGIS profile")
        self.add_model_button = QToolButton()
        self.add_model_button.setText("Add model…")
        self.add_model_button.setToolTip("Add a model file (.fbpmodel, or the authors' unet_<city>.pth.tar) "
                                         "to the model folder; its fast CPU form is prepared at once")
        self.add_model_button.clicked.connect(self.add_model_dialog)
        self.get_models_button = QToolButton()
        self.get_models_button.setText("Get models…")
        self.get_models_button.setToolTip("The authors' five published DPA checkpoints and where to download "
                                          "them")
        self.get_models_button.clicked.connect(self.get_models_dialog)
        # the buttons on a line of their own: a narrow panel (stacked beside others) is never cut off
        form.addRow("Model", self.model_combo)
        model_row.addWidget(self.get_models_button)
        model_row.addWidget(self.add_model_button)
        model_row.addStretch(1)
        form.addRow("", model_row)
        self.model_info = QLabel()
        self.model_info.setWordWrap(True)
        self.model_combo.currentIndexChanged.connect(self._model_changed)
        form.addRow("", self.model_info)

        self.adapt_check = QCheckBox("Adapt to this image first")
        self.adapt_check.setToolTip("Unsupervised self-training on this image before mapping (slow on a CPU)")
        self.adapt_effort = QSpinBox()
        self.adapt_effort.setRange(1, 100000)
        self.adapt_effort.setValue(50)
        self.adapt_effort.setSuffix(" iterations")
        self.adapt_effort.setToolTip("How many self-training iterations: more adapts further and takes "
                                     "longer (about a second each on a CPU for a small model)")
        self.adapt_effort.setEnabled(False)
        self.adapt_check.toggled.connect(self.adapt_effort.setEnabled)
        form.addRow("Adaptation", self.adapt_check)
        form.addRow("", self.adapt_effort)

    def _build_output_rows(self, form: QFormLayout) -> None:
        """Extent, output and confidence, the device line and the backend."""
        self.extent_combo = QComboBox()
        self.extent_combo.addItem("Whole layer", "layer")
        self.extent_combo.addItem("Current map view", "canvas")
        self.extent_combo.setToolTip("Map the whole raster, or only the part shown in the map view")
        form.addRow("Extent", self.extent_combo)
        self.mask_choice = MaskChoice()
        form.addRow("Mask", self.mask_choice)

        self.output_widget = QgsFileWidget()
        self.output_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.output_widget.setFilter("GeoTIFF (*.tif)")
        self.output_widget.lineEdit().setPlaceholderText("[Temporary file]")
        self.output_widget.setToolTip("Where the class map is saved (its confidence and area table go beside "
                                      "it); empty: temporary files")
        form.addRow("Output", self.output_widget)
        self.confidence_check = QCheckBox("Also a confidence layer")
        self.confidence_check.setToolTip("A 0..1 layer of how sure the model is at each pixel (1 - "
                                         "normalised entropy): low values show where the map is least "
                                         "reliable")
        form.addRow("", self.confidence_check)

        self.device_label = QLabel("(checked when the panel is first shown)")
        self.device_label.setWordWrap(True)
        self.device_label.setToolTip("The device the model runs on (a CUDA GPU when torch sees one)")
        form.addRow("Device", self.device_label)
        self.backend_combo = QComboBox()
        self.backend_combo.addItem("Automatic (GPU if any, else onnxruntime or torch)", "auto")
        self.backend_combo.addItem("torch", "torch")
        self.backend_combo.addItem("onnxruntime (CPU)", "onnx")
        self.backend_combo.setToolTip("What runs the model: Automatic picks the fastest available")
        form.addRow("Backend", self.backend_combo)

    def _build_run_rows(self, outer: QVBoxLayout) -> None:
        """The run/cancel button, the progress bar, the stage, the estimate and the run's summary."""
        self.run_button = QPushButton("Map land cover")
        self.run_button.setToolTip("Map the input raster with the model (the same fbplandcover:maplandcover "
                                   "algorithm the toolbox runs); while running: cancel")
        self.run_button.clicked.connect(self.run_clicked)
        outer.addWidget(self.run_button)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(0)
        self.progress_bar.setToolTip("Progress of the whole run")
        outer.addWidget(self.progress_bar)
        self.stage_label = QLabel()
        self.stage_label.setWordWrap(True)
        outer.addWidget(self.stage_label)
        self.eta_label = QLabel()
        self.eta_label.setWordWrap(True)
        outer.addWidget(self.eta_label)
        self.summary_label = QLabel()
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.summary_label.setToolTip("What the last run was: model, sensor and why, device and backend, "
                                      "the adaptation that ran, time")
        outer.addWidget(self.summary_label)

    # ---- state ----------------------------------------------------------------------------------
    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        if not self._engine_checked:
            self.refresh_engine_state()

    def refresh_engine_state(self) -> str | None:
        """Check the engine (imports torch once), fill the model list and the device line."""
        self._engine_checked = True
        problem = engine_check.engine_problem()
        if problem:
            self.engine_box.show_problem(problem)
        else:
            self.engine_box.setVisible(self.engine_box.run is not None)  # keep the install's last words
        self.run_button.setEnabled(not problem)
        self.add_model_button.setEnabled(not problem)
        self.device_label.setText(engine_check.device_line())
        if not problem:
            self.refresh_models()
        return problem

    def on_engine_changed(self) -> None:
        """An install, repair or removal finished: check again (no restart needed when it loads)."""
        engine_check.reset()
        self.refresh_engine_state()

    def refresh_models(self, select: str | None = None) -> None:
        from .models_folder import model_entries, models_dir

        current = select or self.model_combo.currentData()
        self.model_combo.clear()
        try:
            entries = model_entries(models_dir())
        except Exception as exc:  # a broken folder must not break the panel
            self.problem_label.setText(f"The model folder could not be read: {exc}")
            self.problem_label.show()
            entries = []
        self._entries = {entry.name: entry for entry in entries}
        for entry in entries:
            self.model_combo.addItem(entry.name, entry.name)
            self.model_combo.setItemData(self.model_combo.count() - 1, entry.summary or entry.path,
                                         Qt.ToolTipRole)
        if current:
            index = self.model_combo.findData(current)
            if index >= 0:
                self.model_combo.setCurrentIndex(index)

    def _model_changed(self) -> None:
        """Say what the chosen model was trained on; loudly when it is generated data or untrained."""
        entry = getattr(self, "_entries", {}).get(self.model_combo.currentData())
        if entry is not None and self._problem_cause == "model":
            self.show_problem("")  # "No model was given…" is gone once there is one
        if entry is None:
            self.model_info.setText("")
            return
        if entry.not_real:
            self.model_info.setStyleSheet("color: #b00020;")
            self.model_info.setText(f"Trained on: {entry.trained_on}. Its maps are not the land cover of a "
                                    f"real "
                                    "place.")
        else:
            self.model_info.setStyleSheet("")
            self.model_info.setText(f"Trained on: {entry.trained_on}.")

    def add_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Add a model", "", "Models (*.fbpmodel *.pth.tar *.pth *.tar);;All files (*)")
        if path:
            self.add_model(path)

    def get_models_dialog(self) -> None:
        from .get_models_dialog import GetModelsDialog

        self._get_models = GetModelsDialog(self)
        self._get_models.model_file_chosen.connect(self.add_model)
        self._get_models.show()

    def add_model(self, path: str) -> bool:
        """Add a model file with fbplandcover:addmodel as a task (import, its source memory, its ONNX form);
        ``model_added(name)`` when it is in the list. False when it could not start."""
        from .tasks import AlgorithmRun

        if self._add_run is not None and self._add_run.running:
            self.stage_label.setText("A model is being added already; wait for it to finish.")
            return False
        self._add_run = AlgorithmRun("fbplandcover:addmodel", {"INPUT": path}, self)
        self._add_run.progress.connect(lambda v: self.progress_bar.setValue(int(v)))
        self._add_run.text.connect(self.stage_label.setText)
        self._add_run.finished.connect(self._model_added)
        problem = self._add_run.start()
        if problem:
            self.stage_label.setText(problem)
            return False
        self.add_model_button.setEnabled(False)
        self.stage_label.setText(f"Adding {Path(path).name}…")
        return True

    def _model_added(self, ok: bool, results: dict) -> None:
        self.add_model_button.setEnabled(True)
        if not ok:
            self.progress_bar.setValue(0)
            self.stage_label.setText(self._add_run.error_text("The model could not be added."))
            return
        self.progress_bar.setValue(100)
        name = results.get("NAME", "")
        self.refresh_models(select=name)
        if self._problem_cause == "model":
            self.show_problem("")
        extra = "with its source memory" if results.get("MEMORY") else "without a source memory"
        self.stage_label.setText(f"Added model {name} ({extra}; fast CPU form: {results.get('CPU_FORM')}).")
        self.model_added.emit(name)

    def _layer_changed(self, layer) -> None:
        """A new input: its remembered sensor (or auto), what detection says, its band-mapping example."""
        self.sensor_reason.setText("")
        self._detected = ""
        self._example = None
        self.warning_label.hide()
        if layer is None:
            return
        from ..engine.errors import FbpError
        from ..engine.io.delivered import recognise
        from ..engine.io.sensors import choose, mapping_example
        from .alg_base import layer_path

        path = layer_path(layer)
        try:
            self._example = mapping_example(path)
            self.custom_mapping.setPlaceholderText(f"{self._example}[,scale=255]")
        except Exception:  # an unreadable raster: the run says why
            self._example = None
        try:
            profile, reason = choose(path, "auto")  # products (a SAFE's subdataset layer) included
            product = recognise(path)
            self._detected = f"Detected: {profile.name} — {reason}" + (
                f" ({product.in_words()})" if product is not None else "")
        except FbpError as exc:
            self._detected = f"Not detected: {for_panel(str(exc), self._example)}"
        except Exception as exc:  # whatever the reason: it is reported
            self._detected = f"Not detected: {exc}"
        remembered = dock_settings.sensor_for(layer.source())
        index = self.sensor_combo.findData(remembered or "auto")
        self.sensor_combo.blockSignals(True)
        self.sensor_combo.setCurrentIndex(max(index, 0))
        self.sensor_combo.blockSignals(False)
        if remembered == "custom":
            self.custom_mapping.setText(dock_settings.mapping_for(layer.source()))
        self._sensor_changed(remember=False)

    def _sensor_changed(self, *_args, remember: bool = True) -> None:
        """Show the detection only under Auto-detect; a chosen sensor clears the "Not detected" and the
        problems it caused, and is remembered for this file."""
        sensor = self.sensor_combo.currentData()
        self.custom_mapping.setVisible(sensor == "custom")
        self.sensor_reason.setText(self._detected if sensor == "auto" else
                                   f"Chosen: {self.sensor_combo.currentText()}")
        if sensor != "auto" and self._problem_cause == "sensor":
            self.show_problem("")
        self.warning_label.hide()
        self._warned_for = None
        layer = self.layer_combo.currentLayer()
        if remember and layer is not None:
            dock_settings.remember_sensor(layer.source(), sensor, self.custom_mapping.text().strip())

    def show_problem(self, text: str, cause: str = "") -> None:
        self.problem_label.setText(text)
        self.problem_label.setVisible(bool(text))
        self._problem_cause = cause if text else ""

    def show_help(self) -> None:
        from .help import open_help

        open_help("the-panel")

    def push_message(self, text: str, level) -> None:
        """The run's result or error, once, in the QGIS message bar."""
        bar = self.iface.messageBar() if self.iface is not None else None
        if bar is not None:
            bar.pushMessage(MESSAGE_TITLE, text, level, 10 if level != Qgis.Critical else 0)

    # ---- the panel's layer tree: the area table follows the selected result layer ------------------
    def _watch_current_layer(self, on: bool) -> None:
        signal = getattr(self.iface, "currentLayerChanged", None)
        if signal is None:
            return
        try:
            if on:
                signal.connect(self.current_layer_changed)
            else:
                signal.disconnect(self.current_layer_changed)
        except (TypeError, RuntimeError):
            pass

    def current_layer_changed(self, layer) -> None:
        """A result layer of this plugin selected in the Layers panel: show its area table."""
        if isinstance(layer, QgsRasterLayer):
            self.area_table.show_layer(layer)

    def show_diagnostics(self) -> None:
        from .diagnostics_dialog import DiagnosticsDialog
        from .models_folder import models_dir

        self._diagnostics = DiagnosticsDialog(engine_check.diagnostics_text(models_dir()), self, models_dir())
        self._diagnostics.engine_changed.connect(self.on_engine_changed)
        self._diagnostics.show()

    # ---- running ------------------------------------------------------------------------------
    def parameters(self, context: QgsProcessingContext) -> dict:
        """The maplandcover parameters for the current choices (outputs temporary unless a path is set)."""
        layer = self.layer_combo.currentLayer()
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", layer.name()) or "raster"
        sensor = self.sensor_combo.currentData()
        params = {"INPUT": layer.id(), "SENSOR": sensor, "MODEL": self.model_combo.currentData() or "",
                  "BACKEND": self.backend_combo.currentData()}
        if self.adapt_check.isChecked():
            params["ADAPT_ITERATIONS"] = self.adapt_effort.value()
        if sensor == "custom":
            params["CUSTOM_MAPPING"] = self.custom_mapping.text().strip()
        params.update(self.mask_choice.parameters())
        if self.extent_combo.currentData() == "canvas":
            canvas = self.iface.mapCanvas()
            transform = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), layer.crs(),
                                               QgsProject.instance())
            rect = transform.transformBoundingBox(canvas.extent()).intersect(layer.extent())
            params["EXTENT"] = QgsReferencedRectangle(rect, layer.crs())
        path = self.output_widget.filePath().strip()
        if path:
            if not path.lower().endswith((".tif", ".tiff")):
                path += ".tif"
            stem = str(Path(path).with_suffix(""))
            output, confidence, areas = path, f"{stem}_confidence.tif", f"{stem}_areas.csv"
        else:
            output = QgsProcessingUtils.generateTempFilename(f"{safe}_landcover.tif", context)
            confidence = QgsProcessingUtils.generateTempFilename(f"{safe}_confidence.tif", context)
            areas = QgsProcessingUtils.generateTempFilename(f"{safe}_areas.csv", context)
        params["OUTPUT"] = output
        params["AREAS"] = areas
        if self.confidence_check.isChecked():
            params["CONFIDENCE"] = confidence
        return params

    def run_clicked(self) -> None:
        if self.task is not None:
            self.cancel()
            return
        self.start()

    def sensor_spec(self) -> str:
        sensor = self.sensor_combo.currentData()
        return f"custom:{self.custom_mapping.text().strip()}" if sensor == "custom" else sensor

    def check_plausibility(self, layer) -> list[str]:
        """The engine's plausibility warnings for this layer and sensor, and the estimate of a large run,
        shown in the panel."""
        from ..engine.io import plausibility
        from .alg_base import layer_path

        self.warnings = plausibility.check(layer_path(layer), self.sensor_spec())
        texts = ["Check the sensor: " + " ".join(self.warnings)] if self.warnings else []
        large = self.size_warning(layer)
        if large:
            self.warnings.append(large)
            texts.append(f"A long run: {large}")
        if texts:
            self.warning_label.setText(" ".join(texts) + " Press 'Map anyway' to start all the same.")
        self.warning_label.setVisible(bool(texts))
        return self.warnings

    def size_warning(self, layer) -> str | None:
        """The engine's estimate of a large run (the whole layer's working grid; the current map view is
        not checked), at the rate of this panel's last plain run when there was one."""
        if self.extent_combo.currentData() == "canvas":
            return None
        from ..engine.mapping.estimate import planned_size, size_warning
        from .alg_base import layer_path

        size = planned_size(layer_path(layer), self.sensor_spec())
        rate = dock_settings.load("rate_mpx_s", 0.0)
        return size_warning(*size, rate, "your last run's rate") if size else None

    def start(self, force: bool = False) -> bool:
        """Start the mapping task; False (with the reason shown) when it cannot start or a plausibility
        warning was shown first (the next click, or ``force``, maps anyway)."""
        problem = self.refresh_engine_state()
        if problem:
            return False
        layer = self.layer_combo.currentLayer()
        if layer is None:
            self.show_problem("Choose an input raster layer first.")
            return False
        if self.sensor_combo.currentData() == "custom" and not self.custom_mapping.text().strip():
            self.show_problem(f"Give the custom band mapping, e.g. {self._example or 'nir=4,r=1,g=2,b=3'}.",
                              "sensor")
            return False
        alg = QgsApplication.processingRegistry().createAlgorithmById(ALGORITHM_ID)
        if alg is None:
            self.show_problem("The fbplandcover Processing provider is not loaded; re-enable the plugin.")
            return False
        key = (layer.source(), self.sensor_spec())
        if not force and self._warned_for != key and self.check_plausibility(layer):
            self._warned_for = key
            self.run_button.setText("Map anyway")
            return False
        self._warned_for = None
        self.show_problem("")
        self.context = QgsProcessingContext()
        self.context.setProject(QgsProject.instance())
        self.feedback = DockFeedback()
        self.feedback.progressChanged.connect(self._on_progress)
        self.feedback.stage.connect(self._on_stage)
        self.feedback.error.connect(self._on_error)
        params = self.parameters(self.context)
        self.outputs = {k: params.get(k) for k in ("OUTPUT", "CONFIDENCE", "AREAS")}
        self.input_name = layer.name()
        self.model_name = params["MODEL"] or "(first registered)"
        self.last_error = ""
        self.progress_bar.setValue(0)
        self.stage_label.setText("Starting…")
        self.eta_label.setText("")
        self.summary_label.setText("")  # the last run's summary is not this one's (its layers keep theirs)
        self._started = time.monotonic()
        self._mapping_started = None
        from ..engine.progress import RunEstimate

        self.estimate = RunEstimate()
        self._tick.start()
        # Silent: the panel and its one message-bar message say how the run ended, not QGIS's own
        # "Task complete" / "Task failed" (which a cancel also triggers)
        self.task = QgsProcessingAlgRunnerTask(alg, params, self.context, self.feedback,
                                               QgsTask.CanCancel | QgsTask.Silent)
        self.task.executed.connect(self._on_executed)
        self.run_button.setText("Cancel")
        QgsApplication.taskManager().addTask(self.task)
        return True

    def cancel(self) -> None:
        if self.task is not None:
            self.stage_label.setText("Cancelling…")
            self.task.cancel()

    def _on_progress(self, value: float) -> None:
        self.progress_bar.setValue(int(value))
        if self.estimate is not None:
            self.estimate.update(value / 100.0)
            self._show_estimate()

    def _show_estimate(self) -> None:
        if self.estimate is not None and self.task is not None:
            self.eta_label.setText(self.estimate.text())

    def _on_stage(self, text: str) -> None:
        from ..engine.progress import stage_text

        if self.estimate is not None:
            self.estimate.update(self.progress_bar.value() / 100.0, text)
        self.stage_label.setText(stage_text(text))  # one estimate: the run's, on the line below
        if self._mapping_started is None and text.startswith("Mapping"):
            self._mapping_started = time.monotonic()

    def _on_error(self, text: str) -> None:
        self.last_error = text

    def _on_executed(self, successful: bool, results: dict) -> None:
        self.task = None
        self._tick.stop()
        self.estimate = None
        self.run_button.setText("Map land cover")
        elapsed = time.monotonic() - self._started
        cancelled = self.feedback is not None and self.feedback.isCanceled()
        if not successful:
            self.progress_bar.setValue(0)
            self.eta_label.setText("")
            if cancelled:
                self.stage_label.setText("Cancelled; no output was written.")
                self.push_message(f"Mapping {self.input_name} was cancelled; no output was written.",
                                  Qgis.Info)
            else:
                self.stage_label.setText("Mapping failed.")
                error = for_panel(self.last_error or "Mapping failed; see the Processing log.", self._example)
                cause = "model" if error.startswith("No model was given") else \
                    "sensor" if "sensor" in error.lower() else ""
                self.show_problem(error, cause)
                self.push_message(f"Mapping {self.input_name} failed: {error}", Qgis.Critical)
            self.finished.emit(False)
            return
        self.progress_bar.setValue(100)
        self.stage_label.setText(f"Done in {elapsed:.1f} s.")
        self._remember_rate(results, elapsed)
        self.eta_label.setText("")
        self.summary = run_summary.summary(results, self.model_name, elapsed)
        self.summary_label.setText(self.summary)
        self.result_layers = self._add_layers(results)
        if self.result_layers:
            self.area_table.show_layer(self.result_layers[0])
        self.push_message(f"Mapped {self.input_name}: {self.summary}", Qgis.Success)
        self.finished.emit(True)

    def _remember_rate(self, results: dict, elapsed: float) -> None:
        """Megapixels per second of the mapping stage of a plain run of at least 1 Mpx (model loading and a
        first ONNX export left out): what the next large run's estimate uses."""
        from osgeo import gdal

        if self._mapping_started is not None:
            elapsed = time.monotonic() - self._mapping_started
        if results.get("ADAPTATION") or elapsed <= 0:
            return
        try:
            ds = gdal.Open(results.get("OUTPUT") or "")
            mpx = ds.RasterXSize * ds.RasterYSize / 1e6
        except (RuntimeError, AttributeError):
            return
        if mpx >= 1.0:
            dock_settings.save("rate_mpx_s", round(mpx / elapsed, 3))

    def _add_layers(self, results: dict) -> list[QgsRasterLayer]:
        """The run's layers, named for what they are, at the top of the input's group (newest first)."""
        project = QgsProject.instance()
        root = project.layerTreeRoot()
        group = root.findGroup(self.input_name) or root.insertGroup(0, self.input_name)
        layers = []
        when = time.time()
        specs = [("OUTPUT", "land cover", styling.style_classes),
                 ("CONFIDENCE", "confidence", styling.style_confidence)]
        for key, what, style in specs:
            path = results.get(key)
            if not path:
                continue
            name = run_summary.layer_name(self.input_name, what, self.model_name, results, when)
            layer = QgsRasterLayer(path, name)
            if not layer.isValid():
                self.show_problem(f"The result {path} could not be loaded.")
                continue
            style(layer)
            layer.setCustomProperty(AREAS_JSON, results.get("AREAS_JSON") or "")
            layer.setCustomProperty(AREAS_CSV, results.get("AREAS") or "")
            project.addMapLayer(layer, False)
            group.insertLayer(len(layers), layer)
            layers.append(layer)
        return layers

    def shutdown(self) -> None:
        """Cancel a running task and disconnect what this panel connected (plugin unload)."""
        self.engine_box.shutdown()
        self._tick.stop()
        self._watch_current_layer(False)
        if self.task is not None:
            try:
                self.task.executed.disconnect(self._on_executed)
            except (TypeError, RuntimeError):
                pass
            self.task.cancel()
            self.task = None
        try:
            self.layer_combo.layerChanged.disconnect(self._layer_changed)
        except (TypeError, RuntimeError):
            pass


def dock_settings_restore(dock: LandCoverDock) -> None:
    """Put the remembered global choices back and save each as it changes."""
    load, save = dock_settings.load, dock_settings.save
    dock.adapt_check.setChecked(load("adapt", False))
    dock.adapt_effort.setValue(load("adapt_iterations", 50))
    for combo, key, default in ((dock.extent_combo, "extent", "layer"),
                                (dock.backend_combo, "backend", "auto")):
        index = combo.findData(load(key, default))
        if index >= 0:
            combo.setCurrentIndex(index)
    dock.output_widget.setFilePath(load("output", ""))
    dock.confidence_check.setChecked(load("confidence", False))
    # "layer" comes back as the product's own mask: the layer itself is not remembered, and the combo would
    # otherwise offer the first raster of the project (often the input) as the mask
    mode = load("mask", "auto")
    dock.mask_choice.set_mode("auto" if mode == "layer" else mode)
    dock.mask_choice.combo.currentIndexChanged.connect(lambda: save("mask", dock.mask_choice.mode))
    dock.area_table.set_unit(load("area_unit", "km2"))
    dock.adapt_check.toggled.connect(lambda v: save("adapt", bool(v)))
    dock.adapt_effort.valueChanged.connect(lambda v: save("adapt_iterations", int(v)))
    dock.extent_combo.currentIndexChanged.connect(lambda: save("extent", dock.extent_combo.currentData()))
    dock.backend_combo.currentIndexChanged.connect(lambda: save("backend", dock.backend_combo.currentData()))
    dock.output_widget.fileChanged.connect(lambda path: save("output", path))
    dock.confidence_check.toggled.connect(lambda v: save("confidence", bool(v)))
    dock.custom_mapping.editingFinished.connect(lambda: dock._sensor_changed())
