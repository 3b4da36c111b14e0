"""'Get models…': the authors' five published DPA checkpoints, where to download them, and adding the file.

The checkpoints are not ours to redistribute and nothing is downloaded by the plugin: the dialog lists them
(city, sensor, pixel size, file name) from the engine's facts, opens the authors' page in the browser, and
hands a downloaded ``unet_<city>.pth.tar`` to the panel's *Add model…*.
"""

from __future__ import annotations

from qgis.PyQt.QtCore import QUrl, pyqtSignal
from qgis.PyQt.QtGui import QDesktopServices
from qgis.PyQt.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)


class GetModelsDialog(QDialog):
    """``model_file_chosen(path)`` when the user picks a downloaded checkpoint to add."""

    model_file_chosen = pyqtSignal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        from ..engine.models.authors import AUTHORS_MODELS_PAGE, authors_catalog

        self.setWindowTitle("Get models")
        self.catalog = authors_catalog()
        self.page = AUTHORS_MODELS_PAGE
        layout = QVBoxLayout(self)
        intro = QLabel(
            "The authors of the DPA method (Tong, Xia, Zhu 2023) published one U-Net per target city, each "
            "trained "
            "on the Five-Billion-Pixels Gaofen-2 data and adapted without labels to that city's images. "
            "Download the "
            "file from their page (it is not redistributed here), then press 'Add a downloaded file…'. A "
            "model "
            "works best on images of the sensor it was adapted to.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.table = QTableWidget(len(self.catalog), 4)
        self.table.setHorizontalHeaderLabels(["City", "Sensor", "Pixel size", "File"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        for row, entry in enumerate(self.catalog):
            cells = (entry.city_title, entry.sensor_title, entry.pixel_size, entry.file_name)
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(text))
        header = self.table.horizontalHeader()
        for col in range(4):
            header.setSectionResizeMode(col, QHeaderView.ResizeToContents)
        header.setStretchLastSection(True)
        layout.addWidget(self.table)
        self.page_label = QLabel(f"Download page: <a href='{self.page}'>{self.page}</a>")
        self.page_label.setOpenExternalLinks(True)
        layout.addWidget(self.page_label)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        self.open_button = QPushButton("Open the download page")
        self.open_button.setToolTip("Opens the authors' page in your web browser")
        self.add_button = QPushButton("Add a downloaded file…")
        self.add_button.setToolTip("Choose a downloaded unet_<city>.pth.tar (read without running any code "
                                   "from it)")
        buttons.addButton(self.open_button, QDialogButtonBox.ActionRole)
        buttons.addButton(self.add_button, QDialogButtonBox.ActionRole)
        self.open_button.clicked.connect(self.open_page)
        self.add_button.clicked.connect(self.choose_file)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(760, 360)

    def open_page(self) -> bool:
        return QDesktopServices.openUrl(QUrl(self.page))

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a downloaded checkpoint", "",
                                              "The authors' checkpoints (unet_*.pth.tar *.pth *.tar);;All "
                                              "files (*)")
        if path:
            self.model_file_chosen.emit(path)
            self.accept()
