"""Styles for result layers, generated from engine.classes, and the Processing post-processors that apply
them.

Post-processors run on the main thread when Processing loads a result layer: in the toolbox, in batch
mode and in graphical models alike. Processing holds them by raw pointer, so we keep them alive here.
"""

from __future__ import annotations

from qgis.core import (
    QgsColorRampShader,
    QgsGradientColorRamp,
    QgsGradientStop,
    QgsMapLayer,
    QgsPalettedRasterRenderer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
)
from qgis.PyQt.QtGui import QColor

from ..engine import classes

# matplotlib's viridis at 0, .25, .5, .75, 1
_VIRIDIS = ["#440154", "#3b528b", "#21918c", "#5ec962", "#fde725"]


def fbp_palette() -> list[QgsPalettedRasterRenderer.Class]:
    """The 24 FBP classes (values 1..24) with their official names and colours."""
    return [
        QgsPalettedRasterRenderer.Class(c.index, QColor(*c.rgb), c.name) for c in classes.CLASSES[1:]
    ]


def collapse_palette(legend: str) -> list[QgsPalettedRasterRenderer.Class]:
    """The classes of a coarse legend (engine/legends/<legend>.json), value order."""
    collapse = classes.load_collapse(legend)
    return [
        QgsPalettedRasterRenderer.Class(value, QColor(*rgb), name)
        for value, (name, rgb) in sorted(collapse.targets.items())
    ]


def apply_palette(layer: QgsRasterLayer, palette: list[QgsPalettedRasterRenderer.Class]) -> None:
    renderer = QgsPalettedRasterRenderer(layer.dataProvider(), 1, palette)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


def style_classes(layer: QgsRasterLayer) -> None:
    """Paletted renderer with the 24 FBP names and colours (0 stays nodata/transparent)."""
    apply_palette(layer, fbp_palette())


def viridis_ramp() -> QgsGradientColorRamp:
    stops = [QgsGradientStop(i / 4, QColor(c)) for i, c in enumerate(_VIRIDIS[1:4], start=1)]
    return QgsGradientColorRamp(QColor(_VIRIDIS[0]), QColor(_VIRIDIS[-1]), False, stops)


def style_confidence(layer: QgsRasterLayer) -> None:
    """Single-band pseudocolour, viridis, 0..1 (interpolated)."""
    ramp = viridis_ramp()
    fn = QgsColorRampShader(0.0, 1.0, ramp, QgsColorRampShader.Interpolated)
    fn.classifyColorRamp(5, -1)
    shader = QgsRasterShader(0.0, 1.0)
    shader.setRasterShaderFunction(fn)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(1.0)
    layer.setRenderer(renderer)
    layer.triggerRepaint()


class _PostProcessor(QgsProcessingLayerPostProcessorInterface):
    def __init__(self, style, name: str | None = None) -> None:
        super().__init__()
        self._style = style
        self._name = name

    def postProcessLayer(self, layer: QgsMapLayer, context: QgsProcessingContext,  # noqa: N802
                         feedback: QgsProcessingFeedback) -> None:
        if isinstance(layer, QgsRasterLayer) and layer.isValid():
            self._style(layer)
            if self._name:
                layer.setName(self._name)


_KEEP: list[_PostProcessor] = []  # Processing does not own post-processors; keep them alive


def attach(context: QgsProcessingContext, output: str, style, name: str | None = None) -> None:
    """Style ``output`` with ``style(layer)`` when Processing loads it (toolbox, batch, models)."""
    if not output or not context.willLoadLayerOnCompletion(output):
        return
    processor = _PostProcessor(style, name)
    _KEEP.append(processor)  # a few bytes each; a batch may load its layers only at the very end
    context.layerToLoadOnCompletionDetails(output).setPostProcessor(processor)
