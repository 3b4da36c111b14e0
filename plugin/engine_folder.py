"""The engine folder of this QGIS profile, the installer's settings, and the folder on sys.path at start."""

from __future__ import annotations

from pathlib import Path

from .installer.folder import EngineFolder
from .installer.plan import TORCH_BUILDS, Settings

SETTINGS_GROUP = "fbp_landcover/installer"


def profile_dir() -> Path:
    from qgis.core import QgsApplication

    return Path(QgsApplication.qgisSettingsDirPath())


def engine_folder() -> EngineFolder:
    return EngineFolder(profile_dir())


def activate_at_start() -> None:
    """Called by classFactory before anything imports the engine: the installed engine becomes importable.
    Never raises (a broken folder must not stop the plugin from loading; the panel says what is wrong)."""
    try:
        from .installer.folder import activate

        activate(engine_folder())
    except Exception as exc:  # noqa: BLE001
        try:
            from qgis.core import Qgis, QgsMessageLog

            QgsMessageLog.logMessage(f"The engine folder could not be prepared: {exc}", "FBP Land Cover",
                                     Qgis.Warning)
        except Exception:  # noqa: BLE001
            pass


def saved_settings() -> Settings:
    """The installer settings kept in QgsSettings (empty = defaults)."""
    from qgis.core import QgsSettings

    s = QgsSettings()
    build = s.value(f"{SETTINGS_GROUP}/torch_build", "cpu", type=str) or "cpu"
    return Settings(torch_build=build if build in TORCH_BUILDS else "cpu",
                    index_url=s.value(f"{SETTINGS_GROUP}/index_url", "", type=str) or None,
                    wheel_folder=s.value(f"{SETTINGS_GROUP}/wheel_folder", "", type=str) or None,
                    torch_index_url=s.value(f"{SETTINGS_GROUP}/torch_index_url", "", type=str) or None,
                    python=s.value(f"{SETTINGS_GROUP}/python", "", type=str) or None)


def save_settings(settings: Settings) -> None:
    from qgis.core import QgsSettings

    s = QgsSettings()
    s.setValue(f"{SETTINGS_GROUP}/torch_build", settings.torch_build)
    s.setValue(f"{SETTINGS_GROUP}/index_url", settings.index_url or "")
    s.setValue(f"{SETTINGS_GROUP}/wheel_folder", settings.wheel_folder or "")
    s.setValue(f"{SETTINGS_GROUP}/torch_index_url", settings.torch_index_url or "")
    s.setValue(f"{SETTINGS_GROUP}/python", settings.python or "")
