"""fbplandcover:classareas and fbplandcover:collapseclasses — tools on an existing class raster."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from . import styling
from .alg_base import FbpAlgorithm, FeedbackBridge, layer_path, tr


class ClassAreas(FbpAlgorithm):
    NAME = "classareas"
    DISPLAY = "Class areas"
    HELP = (
        "Writes the per-class area table of an FBP class raster (values 1..24; 0 = no data): class, name, "
        "colour, pixels, hectares, km² and percentage of the mapped area, as CSV "
        "(and JSON beside it with the same name). Pixel areas are true areas: constant in a projected CRS, "
        "per row (geodesic, on the ellipsoid) in a geographic CRS."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", tr("Land cover raster")))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT", tr("Area table"), fileFilter="CSV files (*.csv)"))
        self.addOutput(QgsProcessingOutputFile("OUTPUT_JSON", tr("Area table (JSON)")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..engine.products import areas

        layer = self.raster_layer(parameters, "INPUT", context, "land cover raster")
        source = layer_path(layer)
        output = Path(self.parameterAsFileOutput(parameters, "OUTPUT", context))
        feedback.setProgressText(f"Counting classes in {source}")
        counter = self.run_engine(areas.count_raster, source)
        rows = counter.table()
        if counter.pixel_area.warning:
            feedback.pushWarning(f"Areas: {counter.pixel_area.warning}")
        output.parent.mkdir(parents=True, exist_ok=True)
        json_path = self.run_engine(areas.write_area_tables, rows, output, source,
                                    warning=counter.pixel_area.warning)
        feedback.setProgress(100)
        for row in rows:
            if row["pixels"]:
                feedback.pushInfo(f"{row['index']:2d} {row['name']}: {row['km2']:.4f} km² "
                                  f"({row['percent']:.2f} %)")
        return {"OUTPUT": str(output), "OUTPUT_JSON": str(json_path)}


class CollapseClasses(FbpAlgorithm):
    NAME = "collapseclasses"
    DISPLAY = "Collapse classes to a coarser legend"
    HELP = (
        "Re-codes an FBP class raster (1..24) to a coarser legend shipped with the plugin: 'gid5' (built-up, "
        "farmland, forest, meadow, water; snow and bareland have no GID-5 class and become 0) or 'coarse'. "
        "The output is a byte GeoTIFF with nodata 0, a colour table and category names, styled on loading."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        from ..engine import classes

        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", tr("Land cover raster")))
        options = classes.available_collapses()
        legend = QgsProcessingParameterEnum(
            "LEGEND", tr("Legend"), options=options, defaultValue="gid5" if "gid5" in options else options[0])
        legend.setUsesStaticStrings(True)
        self.addParameter(legend)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr("Collapsed land cover")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        layer = self.raster_layer(parameters, "INPUT", context, "land cover raster")
        legend = self.parameterAsEnumString(parameters, "LEGEND", context)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        from ..engine.products.collapse import collapse_raster

        bridge = FeedbackBridge(feedback)
        # QGIS asked already
        self.run_engine(collapse_raster, layer_path(layer), legend, output, overwrite=True,
                        progress=bridge.progress, is_cancelled=bridge.is_cancelled)
        styling.attach(context, output, lambda lyr: styling.apply_palette(lyr,
                                                                          styling.collapse_palette(legend)),
                       f"{layer.name()} {legend}")
        return {"OUTPUT": output}
