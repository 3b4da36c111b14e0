"""fbplandcover:installengine and fbplandcover:removeengine: the engine's packages, from inside QGIS.

The dock's 'Install the engine' button and the Diagnostics dialog run these algorithms as tasks, so what
they do is exactly what the toolbox and ``qgis_process`` do.
"""

from __future__ import annotations

from qgis.core import (
    QgsProcessingException,
    QgsProcessingOutputBoolean,
    QgsProcessingOutputString,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
)

from .alg_base import FbpAlgorithm, FeedbackBridge, tr


class InstallEngine(FbpAlgorithm):
    NAME = "installengine"
    DISPLAY = "Install the engine (or repair it)"
    GROUP = ("setup", "Models and setup")
    HELP = (
        "Installs the Python packages the engine needs (PyTorch, segmentation-models-pytorch, timm, "
        "onnxruntime, "
        "…) into a folder of the plugin's own in your QGIS profile (python/dependencies/fbp_landcover), with "
        "QGIS's "
        "own Python and pip. QGIS's own packages (numpy, GDAL, PyQt, …) are never replaced: pip is told to "
        "keep "
        "them as they are. The CPU build of PyTorch is the default (about 350 MB to download, 1.1 GB on "
        "disk); "
        "choose 'cuda' when this computer has an NVIDIA GPU (about 3.5 GB). A failed or cancelled install "
        "changes "
        "nothing; running it again repairs an install. Give a wheel folder to install without any network."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        from .engine_folder import saved_settings
        from .installer.plan import TORCH_BUILDS

        settings = saved_settings()
        build = self.enum_parameter("TORCH_BUILD", tr("PyTorch build"), list(TORCH_BUILDS))
        build.setDefaultValue(settings.torch_build)
        self.addParameter(build)
        wheels = QgsProcessingParameterFile(
            "WHEEL_FOLDER", tr("Folder of wheel files (install without a network)"),
            behavior=QgsProcessingParameterFile.Folder, optional=True,
            defaultValue=settings.wheel_folder or None)
        self.addParameter(wheels)
        index = QgsProcessingParameterString("INDEX_URL", tr("Package index URL (a mirror; empty = PyPI)"),
                                             optional=True, defaultValue=settings.index_url or "")
        index.setFlags(index.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(index)
        torch_index = QgsProcessingParameterString(
            "TORCH_INDEX_URL", tr("PyTorch index URL (empty = PyTorch's own for the build)"), optional=True,
            defaultValue=settings.torch_index_url or "")
        torch_index.setFlags(torch_index.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(torch_index)
        python = QgsProcessingParameterFile(
            "PYTHON", tr("QGIS's Python interpreter (empty = found automatically)"), optional=True,
            defaultValue=settings.python or None)
        python.setFlags(python.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(python)
        for name, text in [("FOLDER", "Engine folder"), ("LOG", "Install log"),
                           ("PYTHON_USED", "Python used"), ("OUTCOME", "What happened")]:
            self.addOutput(QgsProcessingOutputString(name, tr(text)))
        self.addOutput(QgsProcessingOutputBoolean("RESTART_NEEDED", tr("QGIS must be restarted")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from . import engine_check
        from .engine_folder import engine_folder
        from .installer import InstallError
        from .installer.folder import activate
        from .installer.install import install, loaded_elsewhere
        from .installer.plan import Settings

        settings = Settings(
            torch_build=self.parameterAsEnumString(parameters, "TORCH_BUILD", context) or "cpu",
            index_url=(self.parameterAsString(parameters, "INDEX_URL", context) or "").strip() or None,
            wheel_folder=(self.parameterAsFile(parameters, "WHEEL_FOLDER", context) or "").strip() or None,
            torch_index_url=(self.parameterAsString(parameters, "TORCH_INDEX_URL", context) or "").strip()
            or None,
            python=(self.parameterAsFile(parameters, "PYTHON", context) or "").strip() or None,
        )
        folder = engine_folder()
        feedback.pushInfo(f"Engine folder: {folder.site}")
        feedback.pushInfo(f"Install log: {folder.log}")
        bridge = FeedbackBridge(feedback)
        try:  # the installer gives its own estimate (download rate, unpacking time) in its messages
            result = install(folder.profile, settings, bridge.progress, bridge.is_cancelled)
        except InstallError as exc:
            raise QgsProcessingException(str(exc)) from None
        feedback.pushInfo(f"QGIS's Python: {result.python.describe()}")
        feedback.pushInfo(f"Installed {len(result.installed)} packages: "
                          + ", ".join(p.spec() for p in result.installed))
        if result.kept:
            feedback.pushInfo("Used as QGIS has them: " + ", ".join(result.kept))
        activate(folder)
        engine_check.reset()
        problem = engine_check.engine_problem()
        shadowed = loaded_elsewhere(result.folder, [p.name for p in result.installed])
        if shadowed and not problem:
            problem = (f"this session had already loaded {', '.join(shadowed)} from another folder, so the "
                       "new copies take effect only after a restart")
        restart = bool(problem) or "restart" in result.outcome
        if problem:
            feedback.reportError(
                f"The engine was installed in {result.folder}, but this QGIS session cannot load it yet "
                f"({problem}); "
                "restart QGIS.")
        else:
            feedback.pushInfo(f"The engine is ready ({result.seconds:.0f} s): {result.outcome}.")
        return {"FOLDER": str(result.folder), "LOG": str(result.log), "PYTHON_USED": str(result.python.path),
                "OUTCOME": result.outcome, "RESTART_NEEDED": restart}


class RemoveEngine(FbpAlgorithm):
    NAME = "removeengine"
    DISPLAY = "Remove the engine"
    GROUP = ("setup", "Models and setup")
    HELP = ("Removes the folder of engine packages that 'Install the engine' made in your QGIS profile, and "
            "its "
            "install log. Your models and QGIS's own packages are not touched.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addOutput(QgsProcessingOutputString("OUTCOME", tr("What happened")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from . import engine_check
        from .engine_folder import engine_folder
        from .installer.folder import remove

        folder = engine_folder()
        outcome = remove(folder)
        engine_check.reset()
        feedback.pushInfo(f"{folder.base}: {outcome}")
        return {"OUTCOME": outcome}
