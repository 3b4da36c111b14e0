"""The Diagnostics dialog: the text for bug reports (with Copy), the installer's settings, Repair and Remove.

Repair and Remove run fbplandcover:installengine and fbplandcover:removeengine as tasks, like the panel's
Install button; the text is refreshed when they finish.
"""

from __future__ import annotations

from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtGui import QFontDatabase, QGuiApplication
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)


class DiagnosticsDialog(QDialog):
    engine_changed = pyqtSignal()

    def __init__(self, text: str, parent=None, models_dir: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("FBP Land Cover diagnostics")
        self.models_dir = models_dir
        self.run = None
        self.text = QPlainTextEdit(text)
        self.text.setReadOnly(True)
        self.text.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(self._settings_box())
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        self.progress_bar.hide()
        layout.addWidget(self.progress_bar)
        self.stage_label = QLabel()
        self.stage_label.setWordWrap(True)
        layout.addWidget(self.stage_label)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.copy_button = QPushButton("Copy to clipboard")
        self.repair_button = QPushButton("Install / repair the engine")
        self.repair_button.setToolTip("Install the engine's packages again with the settings above (the "
                                      "current "
                                      "engine stays until the new one is complete)")
        self.remove_button = QPushButton("Remove the engine")
        self.remove_button.setToolTip("Delete the engine's packages from your QGIS profile (models are kept)")
        for button in (self.copy_button, self.repair_button, self.remove_button):
            buttons.addButton(button, QDialogButtonBox.ActionRole)
        self.copy_button.clicked.connect(self.copy)
        self.repair_button.clicked.connect(self.repair)
        self.remove_button.clicked.connect(self.remove)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(720, 520)

    def _settings_box(self) -> QGroupBox:
        from .engine_folder import saved_settings

        settings = saved_settings()
        box = QGroupBox("Engine installer settings")
        form = QFormLayout(box)
        self.build_combo = QComboBox()
        self.build_combo.addItem("CPU (about 350 MB to download)", "cpu")
        self.build_combo.addItem("CUDA, for an NVIDIA GPU (about 3.5 GB)", "cuda")
        self.build_combo.setCurrentIndex(max(0, self.build_combo.findData(settings.torch_build)))
        form.addRow("PyTorch build", self.build_combo)
        self.index_edit = QLineEdit(settings.index_url or "")
        self.index_edit.setPlaceholderText("empty: PyPI (or pip's own configuration)")
        self.index_edit.setToolTip("A package index mirror, e.g. https://mirror.example/pypi/simple")
        form.addRow("Package index", self.index_edit)
        self.torch_index_edit = QLineEdit(settings.torch_index_url or "")
        self.torch_index_edit.setPlaceholderText("empty: PyTorch's own index (…/whl/cpu or …/whl/cu128)")
        self.torch_index_edit.setToolTip("Where the PyTorch build comes from, e.g. https://download.pytorch.org/"
                                         "whl/cu126 for an older NVIDIA driver, or a mirror of it")
        form.addRow("PyTorch index", self.torch_index_edit)
        self.wheels_edit = QLineEdit(settings.wheel_folder or "")
        self.wheels_edit.setPlaceholderText("empty: download; a folder of .whl files installs with no "
                                            "network")
        form.addRow("Wheel folder", self.wheels_edit)
        self.python_edit = QLineEdit(settings.python or "")
        self.python_edit.setPlaceholderText("empty: found automatically")
        self.python_edit.setToolTip("QGIS's own Python interpreter, when the automatic search cannot find it")
        form.addRow("Python", self.python_edit)
        return box

    def settings(self):
        from .installer.plan import Settings

        return Settings(torch_build=self.build_combo.currentData(),
                        index_url=self.index_edit.text().strip() or None,
                        wheel_folder=self.wheels_edit.text().strip() or None,
                        torch_index_url=self.torch_index_edit.text().strip() or None,
                        python=self.python_edit.text().strip() or None)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText(self.text.toPlainText())

    def repair(self) -> None:
        from .engine_folder import save_settings

        settings = self.settings()
        save_settings(settings)
        params = {"TORCH_BUILD": settings.torch_build}
        for key, value in (("INDEX_URL", settings.index_url), ("WHEEL_FOLDER", settings.wheel_folder),
                           ("TORCH_INDEX_URL", settings.torch_index_url), ("PYTHON", settings.python)):
            if value:
                params[key] = value
        self._start("fbplandcover:installengine", params, "Installing the engine…")

    def remove(self) -> None:
        self._start("fbplandcover:removeengine", {}, "Removing the engine…")

    def _start(self, algorithm: str, params: dict, text: str) -> None:
        from .tasks import AlgorithmRun

        if self.run is not None and self.run.running:
            self.run.cancel()
            return
        self.run = AlgorithmRun(algorithm, params, self)
        self.run.progress.connect(lambda v: self.progress_bar.setValue(int(v)))
        self.run.text.connect(self.stage_label.setText)
        self.run.finished.connect(self._finished)
        problem = self.run.start()
        if problem:
            self.stage_label.setText(problem)
            return
        self.progress_bar.setValue(0)
        self.progress_bar.show()
        self.stage_label.setText(text)
        for button in (self.repair_button, self.remove_button):
            button.setEnabled(False)

    def _finished(self, ok: bool, results: dict) -> None:
        from . import engine_check
        from .installer import CANCELLED

        for button in (self.repair_button, self.remove_button):
            button.setEnabled(True)
        self.progress_bar.setVisible(ok)
        if ok:
            self.stage_label.setText(f"Done: {results.get('OUTCOME', '')}.")
        else:
            failed = self.run.error_text("It failed; see the log.")
            self.stage_label.setText(CANCELLED if self.run.cancelled else failed)
        engine_check.reset()
        self.text.setPlainText(engine_check.diagnostics_text(self.models_dir))
        self.engine_changed.emit()
