"""The part of the panel shown while the engine is missing: what is missing, and 'Install the engine'.

It runs ``fbplandcover:installengine`` as a task (progress, cancel, the log's path) and tells the panel when
the engine has become usable, without restarting QGIS.
"""

from __future__ import annotations

from qgis.PyQt.QtCore import Qt, QUrl, pyqtSignal
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from .installer import CANCELLED

INSTALL_ALGORITHM = "fbplandcover:installengine"


class EngineBox(QGroupBox):
    """'The engine is not installed' with the Install button; ``engine_changed`` after an install."""

    engine_changed = pyqtSignal()

    def __init__(self, parent=None) -> None:
        super().__init__("The engine is not installed", parent)
        self.setObjectName("FbpEngineBox")
        self.run = None
        layout = QVBoxLayout(self)
        self.problem_label = QLabel()
        self.problem_label.setWordWrap(True)
        self.problem_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        layout.addWidget(self.problem_label)
        self.cuda_check = QCheckBox()
        self.cuda_check.hide()
        layout.addWidget(self.cuda_check)
        row = QHBoxLayout()
        self.install_button = QPushButton("Install the engine")
        self.install_button.setToolTip("Download and install PyTorch and the other packages the engine needs "
                                       "into "
                                       "a folder of this plugin in your QGIS profile (QGIS's own packages "
                                       "are not "
                                       "touched). Runs in the background; it can be cancelled.")
        self.install_button.clicked.connect(self.install_clicked)
        row.addWidget(self.install_button)
        row.addStretch(1)
        layout.addLayout(row)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 100)
        self.progress_bar.hide()
        layout.addWidget(self.progress_bar)
        self.stage_label = QLabel()
        self.stage_label.setWordWrap(True)
        layout.addWidget(self.stage_label)
        self.log_label = QLabel()
        self.log_label.setWordWrap(True)
        self.log_label.setTextInteractionFlags(Qt.TextBrowserInteraction)
        self.log_label.linkActivated.connect(lambda url: QDesktopServices.openUrl(QUrl(url)))
        layout.addWidget(self.log_label)

    def show_problem(self, text: str) -> None:
        """Show the engine's problem sentence, and offer the CUDA build when an NVIDIA GPU is present."""
        self.setTitle("The engine is not installed")
        self.problem_label.setText(text)
        self.problem_label.show()
        self.install_button.show()
        from .installer.plan import DOWNLOAD_MB, nvidia_gpu

        gpu = nvidia_gpu()
        if gpu:
            self.cuda_check.setText(f"Install the CUDA build of PyTorch for the {gpu} (about "
                                    f"{DOWNLOAD_MB['cuda'] / 1000:.1f} GB to download instead of "
                                    f"{DOWNLOAD_MB['cpu']} MB)")
        self.cuda_check.setVisible(bool(gpu))
        self.setVisible(True)

    def parameters(self) -> dict:
        from .engine_folder import saved_settings

        settings = saved_settings()
        build = "cuda" if self.cuda_check.isVisible() and self.cuda_check.isChecked() else "cpu"
        params = {"TORCH_BUILD": build}
        if settings.wheel_folder:
            params["WHEEL_FOLDER"] = settings.wheel_folder
        if settings.index_url:
            params["INDEX_URL"] = settings.index_url
        if settings.torch_index_url:
            params["TORCH_INDEX_URL"] = settings.torch_index_url
        if settings.python:
            params["PYTHON"] = settings.python
        return params

    def install_clicked(self) -> None:
        if self.run is not None and self.run.running:
            self.stage_label.setText("Cancelling…")
            self.run.cancel()
            return
        self.start()

    def start(self) -> bool:
        from .engine_folder import engine_folder
        from .tasks import AlgorithmRun

        self.run = AlgorithmRun(INSTALL_ALGORITHM, self.parameters(), self)
        self.run.progress.connect(lambda v: self.progress_bar.setValue(int(v)))
        self.run.text.connect(self.stage_label.setText)
        self.run.finished.connect(self._finished)
        problem = self.run.start()
        if problem:
            self.stage_label.setText(problem)
            return False
        log = engine_folder().log
        self.log_label.setText(f"Install log: <a href='{QUrl.fromLocalFile(str(log)).toString()}'>{log}</a>")
        self.progress_bar.setValue(0)
        self.progress_bar.show()
        self.stage_label.setText("Starting the installation…")
        self.install_button.setText("Cancel the installation")
        return True

    def _finished(self, ok: bool, results: dict) -> None:
        self.install_button.setText("Install the engine")
        cancelled = self.run.cancelled
        if ok:
            self.progress_bar.hide()
            restart = results.get("RESTART_NEEDED")
            self.setTitle("The engine is installed")
            self.stage_label.setText("The engine is installed; restart QGIS to use it." if restart
                                     else f"Ready: the engine was {results.get('OUTCOME')} with QGIS's "
                                          f"Python "
                                     f"{results.get('PYTHON_USED')} into {results.get('FOLDER')}.")
            if not restart:
                self.problem_label.hide()
                self.install_button.hide()
                self.cuda_check.hide()
        else:
            self.progress_bar.hide()
            self.stage_label.setText(CANCELLED if cancelled
                                     else self.run.error_text("The installation failed; see the log."))
        self.engine_changed.emit()

    def shutdown(self) -> None:
        if self.run is not None:
            self.run.disconnect_task()
