"""Where the Help buttons lead: docs/help.md in the plugin's repository (its address from metadata.txt)."""

from __future__ import annotations

import configparser
from pathlib import Path

METADATA = Path(__file__).resolve().parents[1] / "metadata.txt"


def help_url(anchor: str = "") -> str:
    """The help page (docs/help.md on the repository's main branch), at ``anchor`` when given."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(METADATA, encoding="utf-8")
    repository = parser.get("general", "repository", fallback="").rstrip("/")
    return f"{repository}/blob/main/docs/help.md" + (f"#{anchor}" if anchor else "")


def open_help(anchor: str = "") -> None:
    from qgis.PyQt.QtCore import QUrl
    from qgis.PyQt.QtGui import QDesktopServices

    QDesktopServices.openUrl(QUrl(help_url(anchor)))
