"""The fbp_landcover engine: everything that maps land cover, and nothing that knows QGIS or Qt."""

from __future__ import annotations

import configparser
from pathlib import Path


def _version() -> str:
    """The version's one home is the plugin's metadata.txt (the plugin repository reads it there)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(Path(__file__).resolve().parents[1] / "metadata.txt", encoding="utf-8")
    return parser.get("general", "version", fallback="unknown")


__version__ = _version()

SOFTWARE = f"fbp_landcover {__version__}"  # what files written by the engine record as their software
