"""fbplandcover:classareas and fbplandcover:collapseclasses — tools on an existing class raster."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from . import styling
from .alg_base import FbpAlgorithm, layer_path, tr


class ClassAreas(FbpAlgorithm):
    NAME = "classareas"
    DISPLAY = "Class areas"
    HELP = (
        "Writes the per-class area table of an FBP class raster (values 1..24; 0 = no data): class, name, colour, "
        "pixels, hectares, km² and percentage of the mapped area, as CSV (and JSON beside it with the same name). "
        "Pixel areas are true areas: constant in a projected CRS, per row (geodesic, on the ellipsoid) in a "
        "geographic CRS."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", tr("Land cover raster")))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT", tr("Area table"), fileFilter="CSV files (*.csv)"))
        self.addOutput(QgsProcessingOutputFile("OUTPUT_JSON", tr("Area table (JSON)")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..engine.products import areas

        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        if layer is None:
            raise QgsProcessingException("The land cover raster could not be opened; choose a raster layer or file.")
        source = layer_path(layer)
        output = Path(self.parameterAsFileOutput(parameters, "OUTPUT", context))
        feedback.setProgressText(f"Counting classes in {source}")
        counter = self.run_engine(areas.count_raster, source)
        rows = counter.table()
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(areas.table_csv(rows))
        json_path = output.with_suffix(".json")
        json_path.write_text(areas.table_json(rows, source))
        feedback.setProgress(100)
        for row in rows:
            if row["pixels"]:
                feedback.pushInfo(f"{row['index']:2d} {row['name']}: {row['km2']:.4f} km² ({row['percent']:.2f} %)")
        return {"OUTPUT": str(output), "OUTPUT_JSON": str(json_path)}


def collapse_raster(source: str, legend: str, output: str, feedback=None) -> None:
    """Write ``source`` re-coded to a coarse legend (uint8, nodata 0, colour table, category names)."""
    import numpy as np
    from osgeo import gdal

    from ..engine import classes

    gdal.UseExceptions()
    collapse = classes.load_collapse(legend)
    table = np.array(collapse.lookup_table(), dtype=np.uint8)
    src = gdal.Open(source)
    band = src.GetRasterBand(1)
    tmp = Path(output).with_name(Path(output).stem + ".partial.tif")
    dst = gdal.GetDriverByName("GTiff").Create(
        str(tmp), src.RasterXSize, src.RasterYSize, 1, gdal.GDT_Byte,
        ["TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"])
    try:
        dst.SetGeoTransform(src.GetGeoTransform())
        dst.SetProjection(src.GetProjection())
        out = dst.GetRasterBand(1)
        out.SetNoDataValue(0)
        step = 512
        for y in range(0, src.RasterYSize, step):
            if feedback is not None and feedback.isCanceled():
                raise QgsProcessingException("Cancelled by the user; no output was written.")
            n = min(step, src.RasterYSize - y)
            block = band.ReadAsArray(0, y, src.RasterXSize, n)
            out.WriteArray(table[np.clip(block, 0, 255).astype(np.uint8)], 0, y)
            if feedback is not None:
                feedback.setProgress(100.0 * (y + n) / src.RasterYSize)
        top = max(collapse.targets) if collapse.targets else 0
        colours = gdal.ColorTable()
        colours.SetColorEntry(0, (0, 0, 0, 0))
        names = ["no data"] + [""] * top
        for value, (name, rgb) in collapse.targets.items():
            colours.SetColorEntry(value, (*rgb, 255))
            names[value] = name
        out.SetColorTable(colours)
        out.SetCategoryNames(names)
        dst.SetMetadataItem("FBP_LEGEND", collapse.name)
        dst.FlushCache()
        dst = None
        aux = Path(str(tmp) + ".aux.xml")  # category names live in the PAM sidecar
        if aux.exists():
            aux.replace(str(output) + ".aux.xml")
        Path(tmp).replace(output)
    except BaseException:
        dst = None
        Path(tmp).unlink(missing_ok=True)
        Path(str(tmp) + ".aux.xml").unlink(missing_ok=True)
        raise


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
        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        if layer is None:
            raise QgsProcessingException("The land cover raster could not be opened; choose a raster layer or file.")
        legend = self.parameterAsEnumString(parameters, "LEGEND", context)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        self.run_engine(collapse_raster, layer_path(layer), legend, output, feedback)
        styling.attach(context, output, lambda lyr: styling.apply_palette(lyr, styling.collapse_palette(legend)),
                       f"{layer.name()} {legend}")
        return {"OUTPUT": output}
