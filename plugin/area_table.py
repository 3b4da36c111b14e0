"""The area table of one result layer: classes largest first, a total row, hectares or km², copy and export.

Rows come from the run's area JSON (or its CSV); the layer keeps their paths as custom properties, so the
table follows the selected result layer, and a saved project keeps the link.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QColor, QGuiApplication, QIcon, QPixmap
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

AREAS_JSON = "fbp_landcover/areas_json"  # layer custom properties: where its table lives
AREAS_CSV = "fbp_landcover/areas_csv"
UNITS = {"km2": ("km²", 1.0, 4), "ha": ("ha", 100.0, 2)}  # unit: (header, per km², decimals)


def read_rows(json_path: str | None, csv_path: str | None) -> tuple[list[dict], float | None, str]:
    """The classes present (pixels > 0), largest first, the km² the masks took out (None: no mask) and why
    the areas are not real areas ("" when they are), from the area JSON or else the CSV (whose "masked" row
    has no class index)."""
    rows: list[dict] = []
    masked, warning = None, ""
    if json_path and Path(json_path).is_file():
        doc = json.loads(Path(json_path).read_text())
        rows = doc["classes"]
        masked = doc["masked"]["masked_km2"] if doc.get("masked") else None
        warning = doc.get("area_warning") or ""
    elif csv_path and Path(csv_path).is_file():
        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
        masked = next((float(r["km2"]) for r in rows if r.get("name") == "masked" and not r.get("index")),
                      None)
        rows = [r for r in rows if r.get("index")]
    rows = [r for r in rows if float(r.get("pixels", 0) or 0) > 0]
    rows.sort(key=lambda r: -float(r["km2"]))
    return rows, masked, warning


class AreaTable(QWidget):
    """The table with its unit switch, Copy, Export… and the CSV's path."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.rows: list[dict] = []
        self.masked_km2: float | None = None
        self.csv_path = ""
        self.layer_name = ""
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel()
        self.title.setWordWrap(True)
        outer.addWidget(self.title)
        self.warning = QLabel()  # why the areas are not real areas (no georeferencing, no CRS)
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #8a5a00;")
        self.warning.hide()
        outer.addWidget(self.warning)
        self.table = QTableWidget(0, 4)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        for col in (1, 2, 3):
            header.setSectionResizeMode(col, QHeaderView.ResizeToContents)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setMinimumHeight(240)  # a dozen classes and the total without scrolling the table
        self.table.setToolTip("Area of each class in the selected result layer, largest first, "
                              "measured with true pixel areas; the last row is the total")
        outer.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.unit_combo = QComboBox()
        for key, (text, _, _) in UNITS.items():
            self.unit_combo.addItem(text, key)
        self.unit_combo.setToolTip("Show areas in square kilometres or hectares")
        self.unit_combo.currentIndexChanged.connect(self._refill)
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the table (tab-separated, with its total) to the clipboard, "
                                    "ready to paste into a spreadsheet")
        self.copy_button.clicked.connect(self.copy)
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Save the table as a CSV file, in the unit shown")
        self.export_button.clicked.connect(self.export_dialog)
        row.addWidget(self.unit_combo)
        row.addStretch(1)
        row.addWidget(self.copy_button)
        row.addWidget(self.export_button)
        outer.addLayout(row)
        self.path_label = QLabel()
        self.path_label.setWordWrap(True)
        self.path_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        # a long path wraps instead of widening the panel
        self.path_label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        outer.addWidget(self.path_label)
        self.show_rows(([], None, ""), "", "")

    @property
    def unit(self) -> str:
        return self.unit_combo.currentData()

    def set_unit(self, unit: str) -> None:
        index = self.unit_combo.findData(unit)
        if index >= 0:
            self.unit_combo.setCurrentIndex(index)

    def show_layer(self, layer) -> bool:
        """Show the table of ``layer`` (a result layer of this plugin); False when it has none."""
        json_path = layer.customProperty(AREAS_JSON, "") if layer is not None else ""
        csv_path = layer.customProperty(AREAS_CSV, "") if layer is not None else ""
        if not json_path and not csv_path:
            return False
        self.show_rows(read_rows(json_path, csv_path), csv_path, layer.name())
        return True

    def show_rows(self, table: tuple[list[dict], float | None, str], csv_path: str, layer_name: str) -> None:
        """``table``: what read_rows returns (the class rows, the masked km², the area warning)."""
        self.rows, self.masked_km2, warning = table
        self.csv_path, self.layer_name = csv_path or "", layer_name
        self.warning.setText(f"Not real areas: {warning}" if warning else "")
        self.warning.setVisible(bool(warning))
        self.title.setText(f"Areas of {layer_name}" if layer_name else "Areas (after a run)")
        self.path_label.setText(f"Area table file: {self.csv_path}" if self.csv_path else "")
        self.copy_button.setEnabled(bool(self.rows))
        self.export_button.setEnabled(bool(self.rows))
        self._refill()

    def lines(self) -> list[list[str]]:
        """The table as text cells: header, one row per class, the total (the unit shown, its decimals)."""
        text, factor, decimals = UNITS[self.unit]
        out = [["Class", "Name", text, "%"]]
        for r in self.rows:
            out.append([str(int(r["index"])), r["name"], f"{float(r['km2']) * factor:.{decimals}f}",
                        f"{float(r['percent']):.1f}"])
        total = sum(float(r["km2"]) for r in self.rows) * factor
        pct = sum(float(r["percent"]) for r in self.rows)
        out.append(["", "Total", f"{total:.{decimals}f}", f"{pct:.1f}"])
        if self.masked_km2 is not None:  # not in the total: masked pixels are not classified
            out.append(["", "Masked (not classified)", f"{self.masked_km2 * factor:.{decimals}f}", ""])
        return out

    def _refill(self) -> None:
        text, _, _ = UNITS[self.unit]
        self.table.setHorizontalHeaderLabels(["Class", "", text, "%"])
        if not self.rows:
            self.table.setRowCount(0)
            return
        cells = self.lines()[1:]
        self.table.setRowCount(len(cells))
        for i, (index, name, area, pct) in enumerate(cells):
            self.table.setItem(i, 0, QTableWidgetItem(f"{index} {name}" if index else name))
            colour = QTableWidgetItem()
            if i < len(self.rows):
                swatch = QPixmap(16, 16)
                swatch.fill(QColor(self.rows[i]["hex"]))
                colour.setIcon(QIcon(swatch))
                colour.setData(Qt.UserRole, self.rows[i]["hex"])
            self.table.setItem(i, 1, colour)
            for col, value in ((2, area), (3, pct)):
                item = QTableWidgetItem(value)
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                self.table.setItem(i, col, item)
        total_row = len(self.rows)
        bold = self.table.item(total_row, 0).font()
        bold.setBold(True)
        for col in (0, 2, 3):
            self.table.item(total_row, col).setFont(bold)

    def copy(self) -> None:
        QGuiApplication.clipboard().setText("\n".join("\t".join(cells) for cells in self.lines()))

    def csv_text(self) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(self.lines())
        return buffer.getvalue()

    def export_dialog(self) -> None:
        start = ""
        if self.csv_path:
            start = str(Path(self.csv_path).with_name(Path(self.csv_path).stem + "_export.csv"))
        path, _ = QFileDialog.getSaveFileName(self, "Export the area table", start, "CSV files (*.csv)")
        if path:
            self.export(path)

    def export(self, path: str) -> str:
        """Write the table shown (unit, total) as CSV to ``path`` (+ .csv), atomically; returns the path."""
        from ..engine.io.atomic import write_text_atomic

        if not path.lower().endswith(".csv"):
            path += ".csv"
        write_text_atomic(path, self.csv_text())
        self.path_label.setText(f"Area table file: {self.csv_path}\nExported to: {path}")
        return path
