"""fbplandcover:maplandcovermany — many rasters (layers or a folder) to per-scene maps and one mosaic."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputRasterLayer,
    QgsProcessingParameterCrs,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorLayer,
)

from ..engine.inference.backends import BACKENDS
from ..engine.many.mosaic import RULES
from ..engine.models.devices import DEVICES
from . import styling
from .alg_base import FbpAlgorithm, FeedbackBridge, layer_path, tr


class MapLandCoverMany(FbpAlgorithm):
    NAME = "maplandcovermany"
    DISPLAY = "Map land cover of many scenes (mosaic)"
    NEEDS_ENGINE = True
    HELP = (
        "Maps many rasters with one model "
        "and joins the maps into one seamless mosaic.\n\n<b>Input rasters</b> and/or <b>input folder</b> "
        "(its *.tif, *.tiff, *.jp2 and *.vrt files).\n<b>Sensor</b>: 'auto' detects each scene's sensor; "
        "otherwise the one chosen applies to every scene.\n<b>Overlap rule</b>: "
        "'confidence' = where scenes overlap the more confident pixel wins; 'recent' = the newest scene wins "
        "(the date in the file name, e.g. 20230415, else the file's time); "
        "'first' = the first listed scene wins.\n<b>Mosaic CRS</b> (default: "
        "the first scene's) and <b>resolution</b> (0 = the finest scene).\n<b>Zones</b>: optional polygons; "
        "the class areas are then also given per zone.\nThe output folder holds scenes/ "
        "(one styled map and confidence raster per scene), mosaic.tif "
        "(a cloud-optimised GeoTIFF with overviews), mosaic.vrt, mosaic_confidence.tif, areas.csv, "
        "zones.csv and manifest.json. Running again into the same folder maps only new, "
        "changed or failed scenes.\n<b>Dask scheduler</b> (advanced): "
        "the address of a running Dask cluster to spread the scenes over."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers(
            "INPUTS", tr("Input rasters"), QgsProcessing.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterFile(
            "FOLDER", tr("Input folder (all its rasters)"), behavior=QgsProcessingParameterFile.Folder,
            optional=True))
        self.add_sensor_and_model_parameters()
        self.addParameter(self.enum_parameter("OVERLAP", tr("Overlap rule"), list(RULES)))
        self.addParameter(QgsProcessingParameterCrs("CRS", tr("Mosaic CRS (empty = the first scene's)"),
                                                    optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "RESOLUTION", tr("Mosaic resolution in CRS units (0 = the finest scene)"),
            QgsProcessingParameterNumber.Double, defaultValue=0.0, minValue=0.0, optional=True))
        self.addParameter(QgsProcessingParameterVectorLayer(
            "ZONES", tr("Zones (polygons) for per-zone areas"), [QgsProcessing.TypeVectorPolygon],
            optional=True))
        self.addParameter(QgsProcessingParameterField(
            "ZONE_FIELD", tr("Zone name field"), parentLayerParameterName="ZONES", optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            "ADAPT_ITERATIONS", tr("Quick adaptation to each scene first: iterations (0 = none)"),
            QgsProcessingParameterNumber.Integer, defaultValue=0, optional=True, minValue=0, maxValue=100000))
        self.add_advanced(
            QgsProcessingParameterString("SCHEDULER", tr("Dask scheduler address (empty = run here)"),
                                         optional=True),
            self.enum_parameter("DEVICE", tr("Device"), list(DEVICES)),
            self.enum_parameter("BACKEND", tr("Backend"), list(BACKENDS)),
        )
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT_FOLDER", tr("Output folder")))
        self.addOutput(QgsProcessingOutputRasterLayer("OUTPUT", tr("Land-cover mosaic")))
        self.addOutput(QgsProcessingOutputFile("AREAS", tr("Area table")))
        self.addOutput(QgsProcessingOutputFile("ZONES_TABLE", tr("Area table per zone")))
        self.addOutput(QgsProcessingOutputFile("MANIFEST", tr("Job manifest")))
        self.addOutput(QgsProcessingOutputNumber("FAILED", tr("Failed scenes")))

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802
        """Resolve layers on the main thread (the dock runs processAlgorithm in a task)."""
        layers = self.parameterAsLayerList(parameters, "INPUTS", context) or []
        self._inputs = [layer_path(layer) for layer in layers]
        folder = self.parameterAsFile(parameters, "FOLDER", context)
        if folder:
            self._inputs.append(folder)
        if not self._inputs:
            raise QgsProcessingException(
                "No input rasters were given; choose raster layers or a folder of them.")
        zones = self.parameterAsVectorLayer(parameters, "ZONES", context)
        self._zones = layer_path(zones) if zones is not None else None
        crs = self.parameterAsCrs(parameters, "CRS", context)
        self._crs = crs.toWkt() if crs.isValid() else None
        return True

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.require_engine()
        from ..engine.many import ManyJob, map_many
        from ..engine.mapping import MapRequest
        from ..engine.training.config import AdaptOptions
        from .models_folder import models_dir

        sensor, model = self.sensor_and_model(parameters, context)
        out_dir = self.parameterAsString(parameters, "OUTPUT_FOLDER", context)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        iterations = self.parameterAsInt(parameters, "ADAPT_ITERATIONS", context) or 0
        resolution = self.parameterAsDouble(parameters, "RESOLUTION", context) or None
        scene = MapRequest(
            image="", output="", model=model, sensor=sensor, models_dir=models_dir(),
            adapt=AdaptOptions(iterations=iterations) if iterations > 0 else None,
            device=self.parameterAsEnumString(parameters, "DEVICE", context) or "auto",
            backend=self.parameterAsEnumString(parameters, "BACKEND", context) or "auto")
        job = ManyJob(
            inputs=self._inputs, output_dir=out_dir, request=scene, crs=self._crs, resolution=resolution,
            overlap=self.parameterAsEnumString(parameters, "OVERLAP", context) or "confidence",
            zones=self._zones, zone_field=self.parameterAsString(parameters, "ZONE_FIELD", context) or None,
            # no local worker processes from inside QGIS (they would start new QGIS instances); a running
            # Dask cluster may be used
            scheduler=(self.parameterAsString(parameters, "SCHEDULER", context) or "").strip() or None,
            # a folder destination QGIS already asked about; with a manifest there the job resumes instead
            overwrite=not (Path(out_dir) / "manifest.json").exists(),
        )
        bridge = FeedbackBridge(feedback)
        feedback.pushInfo(f"Mapping {len(self._inputs)} input(s) with model {model} into {out_dir}.")
        result = self.run_engine(map_many, job, bridge.progress, bridge.is_cancelled)
        feedback.pushInfo(f"{result.mapped} scenes mapped, {result.skipped} already done, "
                          f"{len(result.failed)} failed "
                          f"({result.megapixels:.1f} Mpx in {result.scene_seconds:.1f} s).")
        for path, error in result.failed:
            feedback.reportError(f"{path}: {error}", fatalError=False)
        if result.mosaic is None:
            raise QgsProcessingException(
                "No scene could be mapped, so there is no mosaic; see the errors above for each scene.")
        details = QgsProcessingContext.LayerDetails(tr("Land-cover mosaic"), context.project(), "OUTPUT")
        context.addLayerToLoadOnCompletion(result.mosaic, details)
        styling.attach(context, result.mosaic, styling.style_classes, tr("Land-cover mosaic"))
        return {"OUTPUT": result.mosaic, "OUTPUT_FOLDER": out_dir, "AREAS": result.areas_csv,
                "ZONES_TABLE": result.zones_csv, "MANIFEST": result.manifest, "FAILED": len(result.failed)}
