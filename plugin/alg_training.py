"""fbplandcover:trainsourcemodel, adaptmodel and assessaccuracy — training, adaptation and accuracy in
Processing."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from ..engine.models.devices import DEVICES
from ..engine.training.config import TRAIN_STATS, TrainConfig
from ..engine.training.fbp_dataset import IMAGE_KINDS
from .alg_base import FbpAlgorithm, FeedbackBridge, layer_path, sensor_options, tr

PRESETS = ["fbp_unet", "compact", "mobile_unet", "standard", "custom"]
SOURCES = ["memory", "none", "folder"]
MODEL_FILTER = "FBP models (*.fbpmodel)"
GROUP = ("training", "Training and accuracy")


def _int(name: str, text: str, default: int, minimum: int = 1, maximum: int = 1_000_000,
         optional: bool = False):
    return QgsProcessingParameterNumber(name, tr(text), QgsProcessingParameterNumber.Integer,
                                        defaultValue=default,
                                        optional=optional, minValue=minimum, maxValue=maximum)


def _raster_paths(alg, parameters, name: str, context) -> list[str]:
    """The files behind a multiple-raster-layer parameter, in the order given."""
    layers = alg.parameterAsLayerList(parameters, name, context) or []
    return [layer_path(layer) for layer in layers]


def register_model(path: str, feedback) -> str:
    """Copy a trained/adapted model (and its source memory, if any) into the model folder; its registered
    name."""
    from ..engine.training.source_memory import copy_memory
    from .models_folder import add_model, models_dir

    folder = models_dir()
    entry = add_model(path, folder)
    copy_memory(path, entry.path)
    feedback.pushInfo(f"Registered {entry.name} in {folder}.")
    return entry.name


class TrainSourceModel(FbpAlgorithm):
    NAME = "trainsourcemodel"
    DISPLAY = "Train a source model"
    GROUP = GROUP
    NEEDS_ENGINE = True
    HELP = (
        "Trains a land-cover model on labelled data with the reference recipe (SGD, poly learning rate, "
        "class-weighted cross-entropy, validation mIoU every epoch, the best epoch kept).\n\n<b>Source</b>: "
        "a folder in the official Five-Billion-Pixels layout (Annotation__index/ beside the images), or "
        "(advanced) image and label raster layers paired in order (labels hold FBP classes 1..24, "
        "0 = unlabelled).\n<b>Architecture</b>: 'fbp_unet' (the authors' U-Net), 'compact' (fastest on CPUs: "
        "FPN on MobileNetV3-small), 'mobile_unet' (U-Net on MobileNetV3-small: sharper, half as fast), "
        "'standard' (ResNet-34 U-Net, for GPUs) or 'custom' (the smp architecture, "
        "encoder and decoder given in the advanced settings).\n<b>Epochs</b>, <b>iterations per epoch</b> "
        "(0 = one pass over the training patches), <b>batch size</b>, <b>patch size</b>, "
        "<b>learning rate</b> and <b>class-aware sampling</b> (rare classes drawn more often).\nOutput: "
        "the model file (.fbpmodel, with its metadata card and provenance) and a source memory beside it "
        "(<i>name</i>.memory.npz) that adaptation uses; "
        "optionally registered in the model folder of your profile. Slow on a CPU; "
        "a resume file beside the model lets a cancelled run continue (advanced: resume)."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile(
            "SOURCE", tr("Training data folder (Five-Billion-Pixels layout)"),
            behavior=QgsProcessingParameterFile.Folder, optional=True))
        self.addParameter(self.enum_parameter("ARCHITECTURE", tr("Architecture"), PRESETS))
        self.addParameter(_int("EPOCHS", "Epochs", 120))
        self.addParameter(_int("ITERATIONS", "Iterations per epoch (0 = one pass over the patches)", 0,
                               minimum=0))
        self.addParameter(_int("BATCH_SIZE", "Batch size", 16))
        self.addParameter(_int("PATCH", "Patch size (pixels)", 512, minimum=32, maximum=4096))
        self.addParameter(QgsProcessingParameterNumber(
            "LR", tr("Learning rate"), QgsProcessingParameterNumber.Double, defaultValue=0.005, minValue=1e-7,
            maxValue=10.0))
        self.addParameter(QgsProcessingParameterBoolean(
            "CLASS_AWARE", tr("Class-aware sampling (rare classes more often)"), defaultValue=False))
        self.add_advanced(
            QgsProcessingParameterMultipleLayers(
                "IMAGES", tr("Or: image rasters"), QgsProcessing.TypeRaster, optional=True),
            QgsProcessingParameterMultipleLayers(
                "LABELS", tr("Label rasters (FBP classes, same order as the images)"),
                QgsProcessing.TypeRaster, optional=True),
            self.enum_parameter("SENSOR", tr("Sensor of the image rasters"), sensor_options()),
            QgsProcessingParameterString(
                "CUSTOM_MAPPING",
                tr("Band mapping (custom)"), optional=True),
            self.enum_parameter("FBP_IMAGES", tr("FBP folder images"), list(IMAGE_KINDS)),
            self.enum_parameter("STATS", tr("Normalisation"), list(TRAIN_STATS), default=TrainConfig.stats),
            QgsProcessingParameterString("SMP_ARCH", tr("Custom: smp architecture"), defaultValue="Unet"),
            QgsProcessingParameterString("ENCODER", tr("Custom: encoder"), defaultValue="resnet34"),
            _int("ENCODER_DEPTH", "Custom: encoder depth (0 = the architecture's default)", 0, minimum=0,
                 maximum=5),
            QgsProcessingParameterString(
                "DECODER_CHANNELS", tr("Custom: decoder channels, e.g. 64,32,16 (one per encoder stage)"),
                optional=True),
            _int("VAL_PATCHES", "Validation patches", 500),
            _int("MEMORY_PATCHES", "Source memory patches", 256),
            self.enum_parameter("DEVICE", tr("Device"), list(DEVICES)),
            QgsProcessingParameterBoolean("RESUME", tr("Resume from a resume file beside the model"),
                                          defaultValue=False),
            _int("SEED", "Random seed", 0, minimum=0, maximum=2**31 - 1),
        )
        self.addParameter(QgsProcessingParameterFileDestination("OUTPUT", tr("Model file"),
                                                                fileFilter=MODEL_FILTER))
        self.addParameter(QgsProcessingParameterBoolean(
            "REGISTER", tr("Register the model in the model folder"), defaultValue=False))
        self.addOutput(QgsProcessingOutputFile("MEMORY", tr("Source memory")))
        self.addOutput(QgsProcessingOutputString("NAME", tr("Registered name")))
        self.addOutput(QgsProcessingOutputNumber("VAL_MIOU", tr("Validation mIoU")))

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802
        """Resolve layers on the main thread."""
        folder = (self.parameterAsFile(parameters, "SOURCE", context) or "").strip()
        images = _raster_paths(self, parameters, "IMAGES", context)
        labels = _raster_paths(self, parameters, "LABELS", context)
        if folder and (images or labels):
            raise QgsProcessingException(
                "Both a training data folder and image/label rasters were given; give one of them.")
        if folder:
            self._source = folder
        elif images or labels:
            if len(images) != len(labels):
                raise QgsProcessingException(
                    f"{len(images)} image raster(s) but {len(labels)} label raster(s) were given; "
                    "give one label raster per image, in the same order.")
            self._source = list(zip(images, labels, strict=True))
        else:
            raise QgsProcessingException(
                "No training data was given; choose a Five-Billion-Pixels folder or image and label rasters.")
        return True

    def _architecture(self, parameters, context) -> dict:
        from ..engine.models.presets import preset

        name = self.parameterAsEnumString(parameters, "ARCHITECTURE", context) or "fbp_unet"
        if name != "custom":
            return self.run_engine(preset, name)
        kwargs: dict = {}
        depth = self.parameterAsInt(parameters, "ENCODER_DEPTH", context)
        if depth:
            kwargs["encoder_depth"] = depth
        channels = (self.parameterAsString(parameters, "DECODER_CHANNELS", context) or "").strip()
        if channels:
            try:
                kwargs["decoder_channels"] = [int(v) for v in channels.split(",")]
            except ValueError:
                raise QgsProcessingException(
                    f"The decoder channels {channels!r} "
                    "are not a comma-separated list of integers such as 64,32,16.") from None
        return {"architecture": "smp", "smp_arch": self.parameterAsString(parameters, "SMP_ARCH",
                                                                          context).strip(),
                "encoder": self.parameterAsString(parameters, "ENCODER", context).strip(),
                "arch_kwargs": kwargs}

    def _config(self, parameters, context):
        """The engine's TrainConfig from this algorithm's parameters."""
        from ..engine.training.config import TrainConfig

        patch = self.parameterAsInt(parameters, "PATCH", context)
        return TrainConfig(
            **self._architecture(parameters, context),
            epochs=self.parameterAsInt(parameters, "EPOCHS", context),
            iterations_per_epoch=self.parameterAsInt(parameters, "ITERATIONS", context) or None,
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context), patch=patch,
            lr=self.parameterAsDouble(parameters, "LR", context),
            class_aware=self.parameterAsBool(parameters, "CLASS_AWARE", context),
            stats=self.parameterAsEnumString(parameters, "STATS", context) or "scene",
            image=self.parameterAsEnumString(parameters, "FBP_IMAGES", context) or "8bit",
            sensor=self.sensor_spec(parameters, context),
            val_patches=self.parameterAsInt(parameters, "VAL_PATCHES", context),
            memory_count=self.parameterAsInt(parameters, "MEMORY_PATCHES", context), memory_size=min(256,
                                                                                                     patch),
            device=self.parameterAsEnumString(parameters, "DEVICE", context) or "auto",
            resume=self.parameterAsBool(parameters, "RESUME", context),
            seed=self.parameterAsInt(parameters, "SEED", context),
        )

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.require_engine()
        from ..engine.training.source_memory import memory_path
        from ..engine.training.train import train_source, trained_words

        out = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        bridge = FeedbackBridge(feedback)
        feedback.pushInfo(f"Training {out} on {self._source}.")
        card = self.run_engine(
            train_source, self._source, out, self._config(parameters, context),
            progress=bridge.progress, is_cancelled=bridge.is_cancelled)
        p = card.provenance if isinstance(card.provenance, dict) else {}
        miou = p.get("val_miou")
        feedback.pushInfo(trained_words(p) + ".")
        name = self.run_engine(register_model, out, feedback) \
            if self.parameterAsBool(parameters, "REGISTER", context) else None
        memory = memory_path(out)
        return {"OUTPUT": out, "MEMORY": str(memory) if memory.is_file() else None, "NAME": name,
                "VAL_MIOU": miou}


class AdaptModel(FbpAlgorithm):
    NAME = "adaptmodel"
    DISPLAY = "Adapt a model to target images"
    GROUP = GROUP
    NEEDS_ENGINE = True
    HELP = (
        "Adapts a model to new images without labels (Dynamic Pseudo-label Assignment: "
        "self-training on the model's own most confident predictions, "
        "a share that grows during the run) and saves the adapted model.\n\n<b>Target rasters</b>: "
        "one or more images of the new area or sensor (NIR, red, green, blue bands).\n<b>Model</b>: "
        "a registered model from the list, or a name or path (empty = the first registered model); "
        "<b>Model file</b> wins over it.\n<b>Source data</b>: "
        "'memory' = the source memory saved beside the model by training (source-free when there is none), "
        "'none' = source-free, 'folder' = a labelled Five-Billion-Pixels folder.\n<b>Method</b>: "
        "'auto' = siamese DPA with source data, else 'bn+kl' (BatchNorm statistics re-estimated, "
        "then pseudo-labels anchored to the original model); 'siamese', 'bn', "
        "'pseudo', 'bn+pseudo', 'tent' (only the BatchNorm scale and shift, by entropy) and "
        "'dpa-reference' (the authors' configuration) on request.\n<b>Class quota</b> keeps every class a "
        "share of the pseudo-labels, so frequent classes cannot take over.\n<b>Advanced</b>: a mean teacher "
        "(its momentum; 0 = pseudo-labels from the model itself; not used by tent, and dpa-reference keeps "
        "its own configuration), ClassMix (source classes pasted onto target patches, Siamese only): both "
        "off by default because the benchmark found they did not help (bench/README.md); and the share of "
        "the BatchNorm statistics taken from the target by bn, bn+kl and bn+pseudo (0.5 by default: the "
        "best worst case on the benchmark; 1 = the target's alone).\nOutput: the adapted model "
        "(.fbpmodel) whose card records the adaptation; optionally registered. Slow on a CPU: "
        "each iteration runs the network on a batch."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        from ..engine.training.config import DEFAULT_ITERATIONS, METHODS, MIXES

        self.addParameter(QgsProcessingParameterMultipleLayers(
            "TARGETS", tr("Target rasters"), QgsProcessing.TypeRaster))
        self.add_sensor_and_model_parameters()
        self.addParameter(self.enum_parameter("SOURCE", tr("Source data"), SOURCES))
        self.addParameter(QgsProcessingParameterFile(
            "SOURCE_FOLDER", tr("Source data folder (Five-Billion-Pixels layout; source 'folder')"),
            behavior=QgsProcessingParameterFile.Folder, optional=True))
        self.addParameter(_int("ITERATIONS", "Iterations", DEFAULT_ITERATIONS))
        self.addParameter(self.enum_parameter("METHOD", tr("Method"), list(METHODS)))
        self.addParameter(QgsProcessingParameterBoolean(
            "CLASS_QUOTA", tr("Class quota for pseudo-labels"), defaultValue=False))
        self.add_advanced(
            _int("BATCH_SIZE", "Target patches per iteration", 4),
            _int("PATCH", "Patch size (0 = automatic)", 0, minimum=0, maximum=4096),
            QgsProcessingParameterNumber("LR", tr("Learning rate"), QgsProcessingParameterNumber.Double,
                                         defaultValue=0.001, minValue=1e-7, maxValue=10.0),
            QgsProcessingParameterString("STATS", tr("Normalisation statistics"), defaultValue="scene"),
            self.enum_parameter("DEVICE", tr("Device"), list(DEVICES)),
            _int("SEED", "Random seed", 0, minimum=0, maximum=2**31 - 1),
            QgsProcessingParameterNumber("TEACHER", tr("Mean teacher momentum (0 = no teacher)"),
                                         QgsProcessingParameterNumber.Double, defaultValue=0.0, minValue=0.0,
                                         maxValue=0.9999),
            self.enum_parameter("MIX", tr("Mixing of source into target patches"), list(MIXES)),
            QgsProcessingParameterNumber("BN_TARGET_SHARE",
                                         tr("Share of the BatchNorm statistics taken from the target"),
                                         QgsProcessingParameterNumber.Double, defaultValue=0.5, minValue=0.0,
                                         maxValue=1.0),
        )
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT", tr("Adapted model file"), fileFilter=MODEL_FILTER))
        self.addParameter(QgsProcessingParameterBoolean(
            "REGISTER", tr("Register the adapted model in the model folder"), defaultValue=False))
        self.addOutput(QgsProcessingOutputString("NAME", tr("Registered name")))
        self.addOutput(QgsProcessingOutputString("METHOD_USED", tr("Method used")))

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self._targets = _raster_paths(self, parameters, "TARGETS", context)
        if not self._targets:
            raise QgsProcessingException("No target raster was given; "
                                         "choose one or more raster layers or files.")
        return True

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.require_engine()
        from ..engine.training.adapt import adapt
        from ..engine.training.config import AdaptOptions
        from .models_folder import models_dir

        sensor, model = self.sensor_and_model(parameters, context)
        kind = self.parameterAsEnumString(parameters, "SOURCE", context) or "memory"
        source: object = None if kind == "memory" else False
        if kind == "folder":
            source = (self.parameterAsFile(parameters, "SOURCE_FOLDER", context) or "").strip()
            if not source:
                raise QgsProcessingException(
                    "The source data is 'folder' but no folder was given; "
                    "choose a Five-Billion-Pixels folder, or use 'memory' or 'none'.")
        out = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        config = AdaptOptions(
            iterations=self.parameterAsInt(parameters, "ITERATIONS", context),
            method=self.parameterAsEnumString(parameters, "METHOD", context) or "auto",
            class_quota=self.parameterAsBool(parameters, "CLASS_QUOTA", context),
            batch_size=self.parameterAsInt(parameters, "BATCH_SIZE", context),
            lr=self.parameterAsDouble(parameters, "LR", context),
            device=self.parameterAsEnumString(parameters, "DEVICE", context) or "auto",
            seed=self.parameterAsInt(parameters, "SEED", context),
            patch=self.parameterAsInt(parameters, "PATCH", context) or None,
            teacher=self.parameterAsDouble(parameters, "TEACHER", context),
            mix=self.parameterAsEnumString(parameters, "MIX", context) or "none",
            bn_target_share=self.parameterAsDouble(parameters, "BN_TARGET_SHARE", context),
        )
        bridge = FeedbackBridge(feedback)
        feedback.pushInfo(f"Adapting {model} to {len(self._targets)} image(s) (sensor {sensor}).")
        card = self.run_engine(
            adapt, model, list(self._targets), out=out, config=config, source=source, sensor=sensor,
            stats=(self.parameterAsString(parameters, "STATS", context) or "scene").strip(),
            models_dir=models_dir(), progress=bridge.progress, is_cancelled=bridge.is_cancelled)
        p = card.provenance
        feedback.pushInfo(f"Method {p.get('method')}, {p.get('iterations')} iteration(s); source: "
                          f"{p.get('source_used')}; "
                          f"final pseudo-label share {p.get('final_pseudo_label_share', 0):.1%}.")
        if p.get("guard_verdict"):
            feedback.pushInfo(p["guard_verdict"]["sentence"])
        name = self.run_engine(register_model, out, feedback) \
            if self.parameterAsBool(parameters, "REGISTER", context) else None
        return {"OUTPUT": out, "NAME": name, "METHOD_USED": p.get("method")}


def _collapse_options() -> list[str]:
    from ..engine import classes

    return ["none", *classes.available_collapses()]


class AssessAccuracy(FbpAlgorithm):
    NAME = "assessaccuracy"
    DISPLAY = "Assess map accuracy"
    GROUP = GROUP
    HELP = (
        "Scores an FBP class map (values 1..24, 0 = no data) against reference data: a reference raster "
        "(resampled onto the map's grid with nearest neighbour when the grids differ) "
        "or point/polygon features with a class field "
        "(rasterised onto the map's grid).\n\n<b>Reference mapping</b> (optional JSON file): "
        "reference values (or attribute values) to FBP classes, e.g. {\"1\": \"arbor forest\", \"2\": 13}; "
        "without it the reference must hold FBP classes 0..24.\n<b>Collapse</b>: score in a coarser legend "
        "('gid5', 'coarse') instead of the 24 classes.\nOutputs: overall accuracy, Cohen's kappa, "
        "mean IoU over the classes present in the reference, "
        "and reports with the per-class table and the confusion matrix as JSON, CSV and Markdown."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", tr("Land cover map (FBP classes)")))
        self.addParameter(QgsProcessingParameterRasterLayer(
            "REFERENCE_RASTER", tr("Reference raster"), optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "REFERENCE_VECTOR", tr("Or: reference points or polygons"),
            [QgsProcessing.TypeVectorPoint, QgsProcessing.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterField(
            "FIELD", tr("Class field of the reference features"), parentLayerParameterName="REFERENCE_VECTOR",
            optional=True))
        self.addParameter(QgsProcessingParameterFile(
            "MAPPING", tr("Reference mapping (JSON)"), extension="json", optional=True))
        self.addParameter(self.enum_parameter("COLLAPSE", tr("Score in a coarser legend"),
                                              _collapse_options()))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT", tr("Accuracy report (JSON)"), fileFilter="JSON files (*.json)"))
        self.addOutput(QgsProcessingOutputFile("CSV", tr("Accuracy report (CSV)")))
        self.addOutput(QgsProcessingOutputFile("MARKDOWN", tr("Accuracy report (Markdown)")))
        for key, text in (("OA", "Overall accuracy"), ("KAPPA", "Kappa"), ("MIOU", "Mean IoU")):
            self.addOutput(QgsProcessingOutputNumber(key, tr(text)))

    def prepareAlgorithm(self, parameters, context, feedback):  # noqa: N802
        layer = self.raster_layer(parameters, "INPUT", context, "land cover map")
        self._map = layer_path(layer)
        ref = self.parameterAsRasterLayer(parameters, "REFERENCE_RASTER", context)
        has_vector = parameters.get("REFERENCE_VECTOR") not in (None, "")
        if (ref is not None) == has_vector:
            raise QgsProcessingException(
                "Give exactly one reference: a reference raster, "
                "or reference points/polygons with a class field.")
        self._field = None
        self._layer_name = ""
        if ref is not None:
            self._reference = layer_path(ref)
        else:
            path, self._layer_name = self.parameterAsCompatibleSourceLayerPathAndLayerName(
                parameters, "REFERENCE_VECTOR", context, ["gpkg", "shp"], "gpkg", feedback)
            if not path:
                raise QgsProcessingException("The reference features could not be read; "
                                             "choose a vector layer.")
            self._reference = path
            self._field = self.parameterAsString(parameters, "FIELD", context) or None
        return True

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..engine.assessment.evaluate import evaluate

        out = Path(self.parameterAsFileOutput(parameters, "OUTPUT", context))
        prefix = out.with_suffix("") if out.suffix.lower() == ".json" else out
        collapse = self.parameterAsEnumString(parameters, "COLLAPSE", context) or "none"
        mapping = (self.parameterAsFile(parameters, "MAPPING", context) or "").strip() or None
        bridge = FeedbackBridge(feedback)
        result = self.run_engine(
            evaluate, self._map, self._reference, reference_mapping=mapping,
            collapse=None if collapse == "none" else collapse, out_prefix=str(prefix),
            reference_field=self._field, reference_layer=self._layer_name or None, progress=bridge.progress,
            is_cancelled=bridge.is_cancelled)
        outputs = result["outputs"]

        def fmt(v):
            return "n/a" if v is None else f"{v:.4f}"

        feedback.pushInfo(f"{result['pixels']} reference pixel(s) in the '{result['legend']}' legend: "
                          f"overall accuracy {fmt(result['overall_accuracy'])}, "
                          f"kappa {fmt(result['kappa'])}, mIoU {fmt(result['miou_present'])}.")
        return {"OUTPUT": outputs["json"], "CSV": outputs["csv"], "MARKDOWN": outputs["md"],
                "OA": result["overall_accuracy"], "KAPPA": result["kappa"], "MIOU": result["miou_present"]}
