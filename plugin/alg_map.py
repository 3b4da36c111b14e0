"""fbplandcover:maplandcover — a raster layer to a styled 24-class land-cover map (plus confidence and
areas)."""

from __future__ import annotations

import json

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputString,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..engine.inference.backends import BACKENDS
from ..engine.inference.predict import STITCH_MODES
from ..engine.models.devices import DEVICES
from . import styling
from .alg_base import LABEL_SEPARATOR, FbpAlgorithm, FeedbackBridge, layer_path, option_id, tr

QUALITY_MASKS = [f"auto{LABEL_SEPARATOR}the product's own (Sentinel-2 SCL or MSK_CLASSI; PlanetScope UDM2)",
                 f"none{LABEL_SEPARATOR}no mask at all"]


class MapLandCover(FbpAlgorithm):
    NAME = "maplandcover"
    DISPLAY = "Map land cover"
    NEEDS_ENGINE = True
    HELP = (
        "Classifies a raster into the 24 Five-Billion-Pixels land-cover classes "
        "with a deep-learning model.\n\n<b>Input raster</b>: a multispectral raster with near-infrared, red, "
        "green and blue bands.\n<b>Sensor</b>: 'auto' detects it from the file (band count, data type, "
        "metadata) and fails with the choices when it cannot tell; 'custom' uses the band mapping, e.g. "
        "nir=4,r=1,g=2,b=3,scale=255.\n<b>Model</b>: one of the models in the model folder of your QGIS "
        "profile (a script may also give a name or a path); empty = the first registered model.\n"
        "<b>Model file</b>: any model file (.fbpmodel checkpoint, or the authors' "
        "unet_&lt;city&gt;.pth.tar), used instead of the Model list.\n<b>Quick adaptation</b>: "
        "that many iterations of unsupervised self-training (pseudo-labels) on this image before mapping; "
        "slow on a CPU (minutes), 0 = map with the model as it is.\n<b>Product's cloud and quality mask</b>: "
        "'auto' leaves unclassified what the product's own mask marks (Sentinel-2 SCL: no data, defective, "
        "cloud shadow, medium/high cloud, cirrus; L1C MSK_CLASSI; PlanetScope UDM2: not clear or unusable), "
        "'none' uses no mask at all. <b>Mask raster</b> (optional): its non-zero pixels are left "
        "unclassified too, added to the product's. Masked pixels are no data in the map, left out of the "
        "areas (the log says how many km² were masked), of the normalisation statistics and of adaptation.\n"
        "<b>Extent</b> is optional.\nOutputs: the class raster "
        "(0 = no data, 1..24 the classes, styled with the official colours), optionally a confidence raster "
        "(1 - normalised entropy, 0..1) and a per-class area table (CSV, with a JSON beside it).\nAdvanced: "
        "normalisation statistics ('scene' = from this image, 'checkpoint', a city name or eight numbers), "
        "how windows are stitched, the device (auto uses a CUDA GPU when torch sees one) and the backend."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", tr("Input raster")))
        self.add_sensor_and_model_parameters()
        self.addParameter(QgsProcessingParameterNumber(
            "ADAPT_ITERATIONS", tr("Adaptation iterations"),
            QgsProcessingParameterNumber.Integer, defaultValue=0, optional=True, minValue=0, maxValue=100000))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", tr("Extent"), optional=True))
        self.addParameter(self.enum_parameter("QUALITY_MASK", tr("Product's cloud and quality mask"),
                                              QUALITY_MASKS))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "MASK", tr("Mask raster (non-zero = leave unclassified; added to the product's)"), optional=True))
        self.add_advanced(
            QgsProcessingParameterString("STATS", tr("Normalisation statistics"), defaultValue="scene"),
            self.enum_parameter("STITCH", tr("Stitching of windows"), list(STITCH_MODES)),
            self.enum_parameter("DEVICE", tr("Device"), list(DEVICES)),
            self.enum_parameter("BACKEND", tr("Backend"), list(BACKENDS)),
        )
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr("Land cover")))
        self.addParameter(QgsProcessingParameterRasterDestination(
            "CONFIDENCE", tr("Confidence"), optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            "AREAS", tr("Area table"), fileFilter="CSV files (*.csv)", optional=True, createByDefault=False))
        for key, text in (("SENSOR_USED", "Sensor used"), ("SENSOR_REASON", "Why this sensor"),
                          ("DEVICE_USED", "Device used"),
                          ("BACKEND_USED", "Backend used"), ("AREAS_JSON", "Area table (JSON)"),
                          ("ADAPTATION", "Adaptation that ran (JSON; empty: none)"),
                          ("MASK_USED", "Masks used and the masked share (JSON)")):
            self.addOutput(QgsProcessingOutputString(key, tr(text)))

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802
        """Resolve layers on the main thread (the dock runs processAlgorithm in a task)."""
        layer = self.raster_layer(parameters, "INPUT", context, "input raster")
        self._input = layer_path(layer)
        self._input_name = layer.name()
        self._extent = None
        if parameters.get("EXTENT") not in (None, ""):
            rect = self.parameterAsExtent(parameters, "EXTENT", context, layer.crs())
            if not rect.isNull() and not rect.isEmpty():
                self._extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
        mask = self.parameterAsRasterLayer(parameters, "MASK", context)
        self._mask = layer_path(mask) if mask is not None else None
        quality = self.parameterAsEnumString(parameters, "QUALITY_MASK", context) or "auto"
        self._quality_mask = option_id(quality)
        return True

    def mask_spec(self) -> str:
        """The engine's mask option: the mask raster (added to the product's own), "auto" or "none"."""
        if self._quality_mask == "none" and self._mask:
            raise QgsProcessingException(
                "The product's mask is 'none' (no mask at all) but a mask raster was given; choose 'auto' "
                "to use the mask raster (it is added to the product's own mask), or leave the mask raster "
                "empty.")
        return self._mask or self._quality_mask

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.require_engine()
        from ..engine.mapping import MapRequest, map_landcover
        from ..engine.mapping.request import describe_mask
        from .models_folder import models_dir

        sensor, model = self.sensor_and_model(parameters, context)
        output = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        confidence = self.optional_output_layer(parameters, "CONFIDENCE", context)
        areas = self.parameterAsFileOutput(parameters, "AREAS", context) or None
        request = MapRequest(
            image=self._input, output=output, model=model, sensor=sensor,
            stats=(self.parameterAsString(parameters, "STATS", context) or "scene").strip(),
            stitch=self.parameterAsEnumString(parameters, "STITCH", context) or "blend",
            device=self.parameterAsEnumString(parameters, "DEVICE", context) or "auto",
            backend=self.parameterAsEnumString(parameters, "BACKEND", context) or "auto",
            mask=self.mask_spec(), extent=self._extent, confidence=confidence, areas=areas,
            overwrite=True,  # Processing destinations: QGIS already asked before overwriting
            models_dir=models_dir(),
        )
        iterations = self.parameterAsInt(parameters, "ADAPT_ITERATIONS", context) or 0
        if iterations > 0:
            from ..engine.training.config import AdaptOptions

            request.adapt = AdaptOptions(iterations=iterations)
        bridge = FeedbackBridge(feedback)
        feedback.pushInfo(f"Mapping {self._input} with model {model} (sensor {sensor}).")
        from ..engine.io.plausibility import check

        for warning in check(self._input, sensor):
            feedback.pushWarning(f"Check the sensor: {warning}")
        result = self.run_engine(map_landcover, request, bridge.progress, bridge.is_cancelled)
        feedback.pushInfo(f"Sensor: {result.sensor} — {result.sensor_reason}")
        feedback.pushInfo(f"Device: {result.device} ({result.backend}) — {result.device_reason}")
        if result.adaptation:
            from ..engine.training.adapt import describe

            feedback.pushInfo(f"Adaptation: {describe(result.adaptation)}")
        feedback.pushInfo(f"Mask: {describe_mask(result.mask)}")
        if result.area_warning:
            feedback.pushWarning(f"Areas: {result.area_warning}")
        feedback.pushInfo(f"Mapped {result.width}×{result.height} pixels in {result.seconds:.1f} s.")
        styling.attach(context, output, styling.style_classes, f"{self._input_name} land cover")
        if confidence:
            styling.attach(context, confidence, styling.style_confidence, f"{self._input_name} confidence")
        return {
            "OUTPUT": result.output, "CONFIDENCE": result.confidence, "AREAS": result.areas_csv,
            "AREAS_JSON": result.areas_json, "SENSOR_USED": result.sensor,
            "SENSOR_REASON": result.sensor_reason, "DEVICE_USED": result.device,
            "BACKEND_USED": result.backend,
            "ADAPTATION": json.dumps(result.adaptation, default=str) if result.adaptation else "",
            "MASK_USED": json.dumps(result.mask, default=str) if result.mask else "",
        }
