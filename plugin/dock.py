"""The FBP Land Cover panel: collects parameters, runs fbplandcover:maplandcover as a task, shows the result.

Nothing here touches widgets from the worker thread: the task's feedback reports through signals
(queued to the main thread) and results are handled in the task's ``executed`` signal, which QGIS emits
on the main thread.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsCoordinateTransform,
    QgsMapLayerProxyModel,
    QgsProcessingAlgRunnerTask,
    QgsProcessingContext,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
    QgsReferencedRectangle,
)
from qgis.gui import QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor, QIcon, QPixmap
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from . import engine_check, styling
from .engine_box import EngineBox
from .tasks import TaskFeedback as DockFeedback

ALGORITHM_ID = "fbplandcover:maplandcover"


def _eta(elapsed: float, fraction: float) -> str:
    if fraction <= 0.02 or elapsed < 1.0:
        return f"{elapsed:.0f} s elapsed"
    left = elapsed * (1 - fraction) / fraction
    left_text = f"{left:.0f} s" if left < 90 else f"{left / 60:.0f} min"
    return f"{elapsed:.0f} s elapsed, about {left_text} left"


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
        self._started = 0.0
        self._engine_checked = False
        self._add_run = None
        self._build()
        self.layer_combo.layerChanged.connect(self._layer_changed)
        self._layer_changed(self.layer_combo.currentLayer())

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
        self._build_area_table(outer)
        self.diagnostics_button = QPushButton("Diagnostics…")
        self.diagnostics_button.clicked.connect(self.show_diagnostics)
        outer.addWidget(self.diagnostics_button)
        self.setWidget(body)

    def _build_problem_label(self, outer: QVBoxLayout) -> None:
        """The red sentence shown when the engine cannot run or a run failed."""
        self.problem_label = QLabel()
        self.problem_label.setWordWrap(True)
        self.problem_label.setStyleSheet("color: #b00020;")
        self.problem_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.problem_label.hide()
        outer.addWidget(self.problem_label)
        self.engine_box = EngineBox()
        self.engine_box.hide()
        self.engine_box.engine_changed.connect(self.on_engine_changed)
        outer.addWidget(self.engine_box)

    def _build_input_rows(self, form: QFormLayout) -> None:
        """Input raster, sensor (with the detection's reason) and a custom band mapping."""
        self.layer_combo = QgsMapLayerComboBox()
        self.layer_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        form.addRow("Input raster", self.layer_combo)

        self.sensor_combo = QComboBox()
        self.sensor_combo.addItem("Auto-detect", "auto")
        from ..engine.io.sensors import PROFILES

        for name, profile in PROFILES.items():
            self.sensor_combo.addItem(profile.title, name)
        self.sensor_combo.addItem("Custom band mapping", "custom")
        self.sensor_combo.currentIndexChanged.connect(self._sensor_changed)
        form.addRow("Sensor", self.sensor_combo)
        self.sensor_reason = QLabel()
        self.sensor_reason.setWordWrap(True)
        form.addRow("", self.sensor_reason)
        self.custom_mapping = QLineEdit()
        self.custom_mapping.setPlaceholderText("nir=4,r=1,g=2,b=3[,scale=255]")
        self.custom_mapping.hide()
        form.addRow("", self.custom_mapping)

    def _build_model_rows(self, form: QFormLayout) -> None:
        """The model (and adding one) and quick adaptation."""
        model_row = QHBoxLayout()
        self.model_combo = QComboBox()
        self.model_combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.add_model_button = QToolButton()
        self.add_model_button.setText("Add model…")
        self.add_model_button.setToolTip("Add a model file (.fbpmodel, or the authors' unet_<city>.pth.tar) "
                                         "to "
                                         "the model folder; its fast CPU form is prepared at once")
        self.add_model_button.clicked.connect(self.add_model_dialog)
        self.get_models_button = QToolButton()
        self.get_models_button.setText("Get models…")
        self.get_models_button.setToolTip("The authors' five published DPA checkpoints and where to download "
                                          "them")
        self.get_models_button.clicked.connect(self.get_models_dialog)
        model_row.addWidget(self.model_combo, 1)
        model_row.addWidget(self.get_models_button)
        model_row.addWidget(self.add_model_button)
        form.addRow("Model", model_row)
        self.model_info = QLabel()
        self.model_info.setWordWrap(True)
        self.model_combo.currentIndexChanged.connect(self._model_changed)
        form.addRow("", self.model_info)

        adapt_row = QHBoxLayout()
        self.adapt_check = QCheckBox("Adapt to this image first")
        self.adapt_check.setToolTip("Unsupervised self-training on this image before mapping (slow on a CPU)")
        self.adapt_effort = QSpinBox()
        self.adapt_effort.setRange(1, 100000)
        self.adapt_effort.setValue(50)
        self.adapt_effort.setSuffix(" iterations")
        self.adapt_effort.setEnabled(False)
        self.adapt_check.toggled.connect(self.adapt_effort.setEnabled)
        adapt_row.addWidget(self.adapt_check)
        adapt_row.addWidget(self.adapt_effort)
        form.addRow("Adaptation", adapt_row)

    def _build_output_rows(self, form: QFormLayout) -> None:
        """Extent, output and confidence, the device line and the backend."""
        self.extent_combo = QComboBox()
        self.extent_combo.addItem("Whole layer", "layer")
        self.extent_combo.addItem("Current map view", "canvas")
        form.addRow("Extent", self.extent_combo)

        self.output_widget = QgsFileWidget()
        self.output_widget.setStorageMode(QgsFileWidget.SaveFile)
        self.output_widget.setFilter("GeoTIFF (*.tif)")
        self.output_widget.lineEdit().setPlaceholderText("[Temporary file]")
        form.addRow("Output", self.output_widget)
        self.confidence_check = QCheckBox("Also a confidence layer")
        form.addRow("", self.confidence_check)

        self.device_label = QLabel("(checked when the panel is first shown)")
        self.device_label.setWordWrap(True)
        form.addRow("Device", self.device_label)
        self.backend_combo = QComboBox()
        self.backend_combo.addItem("Automatic (GPU if any, else onnxruntime or torch)", "auto")
        self.backend_combo.addItem("torch", "torch")
        self.backend_combo.addItem("onnxruntime (CPU)", "onnx")
        form.addRow("Backend", self.backend_combo)

    def _build_run_rows(self, outer: QVBoxLayout) -> None:
        """The run/cancel button, the progress bar, the stage and the estimate."""
        self.run_button = QPushButton("Map land cover")
        self.run_button.clicked.connect(self.run_clicked)
        outer.addWidget(self.run_button)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(0)
        outer.addWidget(self.progress_bar)
        self.stage_label = QLabel()
        self.stage_label.setWordWrap(True)
        outer.addWidget(self.stage_label)
        self.eta_label = QLabel()
        outer.addWidget(self.eta_label)

    def _build_area_table(self, outer: QVBoxLayout) -> None:
        """The per-class area table filled after a run."""
        self.area_table = QTableWidget(0, 4)
        self.area_table.setHorizontalHeaderLabels(["Class", "", "km²", "%"])
        self.area_table.verticalHeader().hide()
        header = self.area_table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        for col in (1, 2, 3):
            header.setSectionResizeMode(col, QHeaderView.ResizeToContents)
        self.area_table.setEditTriggers(QTableWidget.NoEditTriggers)
        outer.addWidget(self.area_table, 1)

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
        extra = "with its source memory" if results.get("MEMORY") else "without a source memory"
        self.stage_label.setText(f"Added model {name} ({extra}; fast CPU form: {results.get('CPU_FORM')}).")
        self.model_added.emit(name)

    def _layer_changed(self, layer) -> None:
        self.sensor_reason.setText("")
        if layer is None:
            return
        from ..engine.errors import FbpError
        from ..engine.io.sensors import detect
        from .alg_base import layer_path

        try:
            profile, reason = detect(layer_path(layer))
            self.sensor_reason.setText(f"Detected: {profile.name} — {reason}")
        except FbpError as exc:
            self.sensor_reason.setText(f"Not detected: {exc}")
        except Exception as exc:  # whatever the reason: it is reported
            self.sensor_reason.setText(f"Not detected: {exc}")

    def _sensor_changed(self) -> None:
        self.custom_mapping.setVisible(self.sensor_combo.currentData() == "custom")

    def show_problem(self, text: str) -> None:
        self.problem_label.setText(text)
        self.problem_label.setVisible(bool(text))

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

    def start(self) -> bool:
        """Start the mapping task; False (with the reason shown) when it cannot start."""
        problem = self.refresh_engine_state()
        if problem:
            return False
        layer = self.layer_combo.currentLayer()
        if layer is None:
            self.show_problem("Choose an input raster layer first.")
            return False
        if self.sensor_combo.currentData() == "custom" and not self.custom_mapping.text().strip():
            self.show_problem("Give the custom band mapping, e.g. nir=4,r=1,g=2,b=3.")
            return False
        alg = QgsApplication.processingRegistry().createAlgorithmById(ALGORITHM_ID)
        if alg is None:
            self.show_problem("The fbplandcover Processing provider is not loaded; re-enable the plugin.")
            return False
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
        self.last_error = ""
        self.area_table.setRowCount(0)
        self.progress_bar.setValue(0)
        self.stage_label.setText("Starting…")
        self.eta_label.setText("")
        self._started = time.monotonic()
        self.task = QgsProcessingAlgRunnerTask(alg, params, self.context, self.feedback)
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
        self.eta_label.setText(_eta(time.monotonic() - self._started, value / 100.0))

    def _on_stage(self, text: str) -> None:
        self.stage_label.setText(text)

    def _on_error(self, text: str) -> None:
        self.last_error = text

    def _on_executed(self, successful: bool, results: dict) -> None:
        self.task = None
        self.run_button.setText("Map land cover")
        elapsed = time.monotonic() - self._started
        cancelled = self.feedback is not None and self.feedback.isCanceled()
        if not successful:
            self.progress_bar.setValue(0)
            self.eta_label.setText("")
            self.stage_label.setText("Cancelled; no output was written." if cancelled
                                     else "Mapping failed.")
            if not cancelled:
                self.show_problem(self.last_error or "Mapping failed; see the Processing log.")
            self.finished.emit(False)
            return
        self.progress_bar.setValue(100)
        self.stage_label.setText(f"Done in {elapsed:.1f} s on {results.get('DEVICE_USED')} "
                                 f"({results.get('BACKEND_USED')}); sensor {results.get('SENSOR_USED')}.")
        self.eta_label.setText("")
        self.result_layers = self._add_layers(results)
        self._fill_areas(results.get("AREAS_JSON"), results.get("AREAS"))
        self.finished.emit(True)

    def _add_layers(self, results: dict) -> list[QgsRasterLayer]:
        project = QgsProject.instance()
        root = project.layerTreeRoot()
        group = root.findGroup(self.input_name) or root.insertGroup(0, self.input_name)
        layers = []
        specs = [("OUTPUT", "land cover", styling.style_classes),
                 ("CONFIDENCE", "confidence", styling.style_confidence)]
        for key, suffix, style in specs:
            path = results.get(key)
            if not path:
                continue
            layer = QgsRasterLayer(path, f"{self.input_name} {suffix}")
            if not layer.isValid():
                self.show_problem(f"The result {path} could not be loaded.")
                continue
            style(layer)
            project.addMapLayer(layer, False)
            group.addLayer(layer)
            layers.append(layer)
        return layers

    def _fill_areas(self, json_path: str | None, csv_path: str | None) -> None:
        rows = []
        if json_path and Path(json_path).is_file():
            rows = json.loads(Path(json_path).read_text())["classes"]
        elif csv_path and Path(csv_path).is_file():
            import csv

            with open(csv_path, newline="") as f:
                rows = list(csv.DictReader(f))
        rows = [r for r in rows if float(r.get("pixels", 0) or 0) > 0]
        rows.sort(key=lambda r: -float(r["km2"]))
        self.area_table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            self.area_table.setItem(i, 0, QTableWidgetItem(f"{int(row['index'])} {row['name']}"))
            swatch = QPixmap(16, 16)
            swatch.fill(QColor(row["hex"]))
            colour = QTableWidgetItem()
            colour.setIcon(QIcon(swatch))
            colour.setData(Qt.UserRole, row["hex"])
            self.area_table.setItem(i, 1, colour)
            km2 = QTableWidgetItem(f"{float(row['km2']):.4f}")
            km2.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
            self.area_table.setItem(i, 2, km2)
            pct = QTableWidgetItem(f"{float(row['percent']):.1f}")
            pct.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
            self.area_table.setItem(i, 3, pct)

    def shutdown(self) -> None:
        """Cancel a running task and disconnect what this panel connected (plugin unload)."""
        self.engine_box.shutdown()
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
