"""The panel's mask choice: the product's own cloud and quality mask, no mask, or the product's own plus a
mask layer (its non-zero pixels left unclassified) — the QUALITY_MASK and MASK parameters of maplandcover."""

from __future__ import annotations

from qgis.core import QgsMapLayerProxyModel
from qgis.gui import QgsMapLayerComboBox
from qgis.PyQt.QtWidgets import QComboBox, QVBoxLayout, QWidget

CHOICES = (  # (data, text, tooltip)
    ("auto", "Product's own cloud and quality mask",
     "Leave unclassified what the product's own mask marks: Sentinel-2 SCL (no data, defective, cloud "
     "shadow, medium/high cloud, cirrus) or MSK_CLASSI, PlanetScope UDM2 (not clear, unusable). A raster "
     "that is not a recognised product has none"),
    ("none", "No mask", "Classify every pixel, clouds included"),
    ("layer", "Product's own + a mask layer",
     "Also leave unclassified the non-zero pixels of a raster layer (clouds or areas you drew)"),
)


class MaskChoice(QWidget):
    """A combo (auto / none / layer) and, for "layer", the mask layer's combo under it."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.combo = QComboBox()
        for data, text, tip in CHOICES:
            self.combo.addItem(text, data)
            self.combo.setItemData(self.combo.count() - 1, tip, 3)  # Qt.ToolTipRole
        self.combo.setToolTip("Masked pixels are no data in the map, left out of the areas (the summary "
                              "says how many km²), of the normalisation statistics and of adaptation")
        self.combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(12)
        self.layer_combo = QgsMapLayerComboBox()
        self.layer_combo.setFilters(QgsMapLayerProxyModel.RasterLayer)
        self.layer_combo.setToolTip("The mask layer: its non-zero pixels are left unclassified")
        layout.addWidget(self.combo)
        layout.addWidget(self.layer_combo)
        self.combo.currentIndexChanged.connect(self._changed)
        self._changed()

    @property
    def mode(self) -> str:
        return self.combo.currentData()

    def set_mode(self, mode: str) -> None:
        index = self.combo.findData(mode)
        if index >= 0:
            self.combo.setCurrentIndex(index)

    def _changed(self) -> None:
        self.layer_combo.setVisible(self.mode == "layer")

    def parameters(self) -> dict:
        """QUALITY_MASK and, for a mask layer, MASK (the layer's id)."""
        if self.mode == "layer":
            layer = self.layer_combo.currentLayer()
            return {"QUALITY_MASK": "auto", **({"MASK": layer.id()} if layer is not None else {})}
        return {"QUALITY_MASK": self.mode}
