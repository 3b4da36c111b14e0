"""fbplandcover:addmodel and fbplandcover:diagnostics."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputBoolean,
    QgsProcessingOutputString,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
)

from .alg_base import FbpAlgorithm, tr


class AddModel(FbpAlgorithm):
    NAME = "addmodel"
    DISPLAY = "Add model to the model folder"
    GROUP = ("setup", "Models and setup")
    NEEDS_ENGINE = True
    HELP = (
        "Checks a model file (our .fbpmodel checkpoint with its metadata, "
        "or the authors' unet_&lt;city&gt;.pth.tar, "
        "read without running any code from it) and copies it into the model folder of your QGIS profile, "
        "where the panel and 'Map land cover' find it by name. What belongs to the model comes with it (its "
        "source memory, which adaptation by the Siamese method needs), and its fast CPU form (an ONNX "
        "export) "
        "is prepared now, so that the first map is as fast as the next."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile("INPUT", tr("Model file")))
        self.addOutput(QgsProcessingOutputString("NAME", tr("Registered name")))
        self.addOutput(QgsProcessingOutputString("PATH", tr("Path in the model folder")))
        self.addOutput(QgsProcessingOutputBoolean("MEMORY", tr("Its source memory came with it")))
        self.addOutput(QgsProcessingOutputString("CPU_FORM", tr("Its fast CPU form")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        self.require_engine()
        from ..engine.inference.onnx_cache import PREPARE_MESSAGE, prepare
        from ..engine.models.card import MEMORY_SUFFIX, companion
        from .models_folder import add_model, models_dir

        src = self.parameterAsFile(parameters, "INPUT", context)
        folder = models_dir()
        feedback.setProgressText("Checking and copying the model")
        entry = self.run_engine(add_model, src, folder)
        memory = companion(entry.path, MEMORY_SUFFIX).is_file()
        summary = f" ({entry.summary})" if entry.summary else ""
        feedback.pushInfo(f"Added {entry.name} to {folder}{summary}; source memory: "
                          f"{'copied with it' if memory else 'none (adaptation will be source-free)'}")
        feedback.setProgress(20)
        feedback.setProgressText(PREPARE_MESSAGE)
        _onnx, cpu_form = self.run_engine(prepare, entry.path)
        feedback.pushInfo(f"Fast CPU form: {cpu_form}")
        feedback.setProgress(100)
        return {"NAME": entry.name, "PATH": entry.path, "MEMORY": memory, "CPU_FORM": cpu_form}


class Diagnostics(FbpAlgorithm):
    NAME = "diagnostics"
    DISPLAY = "Diagnostics (for bug reports)"
    GROUP = ("setup", "Models and setup")
    HELP = (
        "Reports the versions of QGIS, Python, GDAL, torch and onnxruntime, whether CUDA is available, "
        "the device the engine would use and why, the engine version and the model folder. "
        "Copy it into a bug report."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT", tr("Diagnostics file"), fileFilter="Text files (*.txt)", optional=True,
            createByDefault=False))
        self.addOutput(QgsProcessingOutputString("TEXT", tr("Diagnostics")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from .engine_check import diagnostics_text
        from .models_folder import models_dir

        text = diagnostics_text(models_dir())
        for line in text.splitlines():
            feedback.pushInfo(line)
        output = self.parameterAsFileOutput(parameters, "OUTPUT", context)
        if output:
            from ..engine.io.atomic import write_text_atomic

            write_text_atomic(output, text + "\n")
        return {"TEXT": text, "OUTPUT": output or None}
