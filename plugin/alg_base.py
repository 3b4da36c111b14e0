"""What every fbplandcover algorithm shares: group, icon, help, progress bridging, error translation."""

from __future__ import annotations

import time
from pathlib import Path

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputLayerDefinition,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
    QgsProviderRegistry,
)
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtGui import QIcon

ICON = Path(__file__).resolve().parents[1] / "resources" / "icon.png"


def tr(text: str) -> str:
    return QCoreApplication.translate("fbplandcover", text)


def layer_path(layer) -> str:
    """The file behind a GDAL raster layer (without GDAL open options)."""
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    return parts.get("path") or layer.source()


class FeedbackBridge:
    """The engine's progress(fraction, message) and is_cancelled() on top of a Processing feedback."""

    def __init__(self, feedback: QgsProcessingFeedback | None) -> None:
        self.feedback = feedback
        self._last_text = ""
        self._last_time = 0.0

    def progress(self, fraction: float, message: str) -> None:
        if self.feedback is None:
            return
        self.feedback.setProgress(max(0.0, min(100.0, 100.0 * fraction)))
        stage = message.split(" (about ")[0]
        now = time.monotonic()
        # a new stage at once; the same stage with a new estimate at most once a second (the log keeps it)
        if message != self._last_text and (stage != self._last_text.split(" (about ")[0]
                                            or now - self._last_time >= 1.0):
            self.feedback.setProgressText(message)
            self._last_text, self._last_time = message, now

    def is_cancelled(self) -> bool:
        return bool(self.feedback is not None and self.feedback.isCanceled())


class FbpAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses set NAME, DISPLAY, HELP and NEEDS_ENGINE."""

    NAME = ""
    DISPLAY = ""
    HELP = ""
    GROUP = ("maps", "Land cover")
    NEEDS_ENGINE = False  # torch + smp must load

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:  # noqa: N802
        return tr(self.DISPLAY)

    def group(self) -> str:
        return tr(self.GROUP[1])

    def groupId(self) -> str:  # noqa: N802
        return self.GROUP[0]

    def shortHelpString(self) -> str:  # noqa: N802
        return tr(self.HELP)

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def helpUrl(self) -> str:  # noqa: N802
        from .help import help_url

        return help_url(self.NAME)

    def createInstance(self):  # noqa: N802
        return type(self)()

    def preprocessParameters(self, parameters):  # noqa: N802
        """Enum values given as option numbers (what ``qgis_process help`` lists) become the option names
        our enums use, so ARCHITECTURE=2 and ARCHITECTURE=unet_resnet34 both work."""
        values = dict(parameters)
        for param in self.parameterDefinitions():
            if isinstance(param, QgsProcessingParameterEnum) and param.usesStaticStrings():
                values[param.name()] = enum_name(param, values.get(param.name()))
        return values

    def checkParameterValues(self, parameters, context):  # noqa: N802
        return super().checkParameterValues(self.preprocessParameters(parameters), context)

    def parameterAsEnumString(self, parameters, name, context):  # noqa: N802
        return super().parameterAsEnumString(self.preprocessParameters(parameters), name, context)

    def canExecute(self):  # noqa: N802
        if self.NEEDS_ENGINE:
            from .engine_check import engine_problem

            problem = engine_problem()
            if problem:
                return False, problem
        return True, ""

    def run_engine(self, fn, *args, **kwargs):
        """Call an engine function; FbpError (CancelledError included) becomes a QgsProcessingException."""
        from ..engine.errors import FbpError

        try:
            return fn(*args, **kwargs)
        except FbpError as exc:
            raise QgsProcessingException(str(exc)) from None

    def raster_layer(self, parameters, name: str, context, what: str):
        """The raster layer of parameter ``name``, or a QgsProcessingException naming the ``what`` it is."""
        layer = self.parameterAsRasterLayer(parameters, name, context)
        if layer is None or not layer.isValid():
            raise QgsProcessingException(f"The {what} {parameters.get(name)!r} could not be opened; "
                                         "choose a raster layer or file.")
        return layer

    def optional_output_layer(self, parameters, name: str, context) -> str | None:
        """An optional raster destination, or None when left empty. Asking Processing for an empty one
        would register '' as a layer to load, which batch mode then reports as "not correctly generated"."""
        value = parameters.get(name)
        if isinstance(value, QgsProcessingOutputLayerDefinition):
            value = value.sink.staticValue()
        if value in (None, ""):
            return None
        return self.parameterAsOutputLayer(parameters, name, context) or None

    def require_engine(self) -> None:
        ok, problem = self.canExecute()
        if not ok:
            raise QgsProcessingException(problem)

    # ---- parameters shared by the mapping algorithms -------------------------------------------

    def add_advanced(self, *params) -> None:
        """Add parameters shown under "Advanced parameters"."""
        for param in params:
            param.setFlags(param.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(param)

    @staticmethod
    def enum_parameter(name: str, text: str, options: list[str], default: str | None = None
                       ) -> QgsProcessingParameterEnum:
        """An enum whose values are stable strings (models and scripts keep working if options grow);
        ``default`` one of the options (the first when None)."""
        param = QgsProcessingParameterEnum(name, text, options=options, defaultValue=default or options[0])
        param.setUsesStaticStrings(True)
        return param

    def add_sensor_and_model_parameters(self) -> None:
        """SENSOR (auto + the engine's profiles + custom), CUSTOM_MAPPING and MODEL."""
        self.addParameter(self.enum_parameter("SENSOR", tr("Sensor"), sensor_options()))
        self.addParameter(QgsProcessingParameterString(
            "CUSTOM_MAPPING", tr("Band mapping (custom)"), optional=True))
        model = QgsProcessingParameterString("MODEL", tr("Model"), optional=True)
        # the registered models as a list (a name or a path typed by a script works as before)
        model.setMetadata({"widget_wrapper": {"value_hints": registered_model_names()}})
        self.addParameter(model)
        self.addParameter(QgsProcessingParameterFile(
            "MODEL_FILE", tr("Model file"), optional=True,
            fileFilter=MODEL_FILE_FILTER))

    def sensor_spec(self, parameters, context) -> str:
        """The engine's sensor spec from SENSOR and CUSTOM_MAPPING."""
        sensor = option_id(self.parameterAsEnumString(parameters, "SENSOR", context) or "auto")
        if sensor == "custom":
            mapping = (self.parameterAsString(parameters, "CUSTOM_MAPPING", context) or "").strip()
            if not mapping:
                raise QgsProcessingException(
                    "The sensor is 'custom' but no band mapping was given; "
                    "give one such as nir=4,r=1,g=2,b=3.")
            sensor = mapping if mapping.startswith("custom:") else f"custom:{mapping}"
        return sensor

    def sensor_and_model(self, parameters, context) -> tuple[str, str]:
        """The engine's sensor spec and model spec from SENSOR, CUSTOM_MAPPING and MODEL."""
        from .models_folder import models_dir

        model_file = (self.parameterAsFile(parameters, "MODEL_FILE", context) or "").strip()
        model = model_file or (self.parameterAsString(parameters, "MODEL", context) or "").strip()
        return self.sensor_spec(parameters, context), model or default_model(models_dir())


LABEL_SEPARATOR = " — "  # "sentinel2 — Sentinel-2 L1C/L2A": the id a script gives, then the name shown


def option_id(option: str) -> str:
    """The id of an enum option shown as "id — name" (an option without a name is its own id)."""
    return option.split(LABEL_SEPARATOR, 1)[0]


def enum_name(param: QgsProcessingParameterEnum, value):
    """An option number (int or digits) or an option's id ("sentinel2" for "sentinel2 — Sentinel-2 …") of
    a static-string enum as its option; anything else as is."""
    options = param.options()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        index = int(value)
        return options[index] if 0 <= index < len(options) else value
    if isinstance(value, str) and value not in options:
        return next((option for option in options if option_id(option) == value.strip()), value)
    return value


def sensor_options() -> list[str]:
    """The SENSOR enum values: auto, every engine profile, custom, each as "id — name" (stable strings, not
    indices; a script or a model may give the id alone: "sentinel2")."""
    from ..engine.io.sensors import PROFILES

    # no commas: Processing reads a comma in an enum's text value as a list of options
    named = [f"{name}{LABEL_SEPARATOR}{profile.title.split(' (')[0].replace(',', '/')}"
             for name, profile in PROFILES.items() if name != "custom"]
    return [f"auto{LABEL_SEPARATOR}detect from the file", *named,
            f"custom{LABEL_SEPARATOR}the band mapping below"]


MODEL_FILE_FILTER = "Models (*.fbpmodel *.pth *.tar *.pt);;All files (*.*)"


def registered_model_names() -> list[str]:
    """The names in the model folder, for the Model parameter's list (read when a dialog opens)."""
    from .models_folder import model_entries

    try:
        return [entry.name for entry in model_entries()]
    except (ImportError, OSError):  # the engine not installed yet, an unreadable folder: no list
        return []


def default_model(models_dir: str) -> str:
    """The first registered model, or a QgsProcessingException saying how to add one."""
    from .models_folder import model_entries

    entries = model_entries(models_dir)
    if not entries:
        raise QgsProcessingException(
            f"No model was given and the model folder {models_dir} is empty; "
            "add a model file with 'Add model…' in the FBP Land Cover panel "
            "or the fbplandcover:addmodel algorithm, or give its path."
        )
    return entries[0].name
