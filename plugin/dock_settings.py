"""The panel's choices remembered with QgsSettings: the sensor per input file (an explicit choice, used
again when that file is chosen), the rest globally."""

from __future__ import annotations

import hashlib

from qgis.core import QgsSettings

PREFIX = "fbp_landcover/dock/"
GLOBAL_KEYS = ("adapt", "adapt_iterations", "extent", "output", "confidence", "backend", "area_unit", "mask",
               "rate_mpx_s")


def _source_key(source: str) -> str:
    return f"{PREFIX}sensor_by_source/{hashlib.sha1(source.encode('utf-8')).hexdigest()}"


def sensor_for(source: str) -> str | None:
    """The sensor last chosen explicitly for the file ``source``, or None."""
    value = QgsSettings().value(_source_key(source), "")
    return str(value) if value else None


def remember_sensor(source: str, sensor: str, custom_mapping: str = "") -> None:
    """Remember an explicit sensor choice for ``source`` ("auto" forgets it)."""
    settings = QgsSettings()
    if sensor in ("", "auto"):
        settings.remove(_source_key(source))
        settings.remove(_source_key(source) + "_mapping")
        return
    settings.setValue(_source_key(source), sensor)
    settings.setValue(_source_key(source) + "_mapping", custom_mapping)


def mapping_for(source: str) -> str:
    return str(QgsSettings().value(_source_key(source) + "_mapping", "") or "")


def load(key: str, default):
    """A global choice (``key`` one of GLOBAL_KEYS), typed like ``default``."""
    value = QgsSettings().value(PREFIX + key, default)
    if isinstance(default, bool):
        return value in (True, "true", "True", "1", 1)
    if isinstance(default, (int, float)):
        try:
            return type(default)(value)
        except (TypeError, ValueError):
            return default
    return str(value) if value is not None else default


def save(key: str, value) -> None:
    QgsSettings().setValue(PREFIX + key, value)
