"""FBP Land Cover: a QGIS plugin that maps 24 Five-Billion-Pixels land-cover classes."""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    """Called by QGIS to load the plugin; imports nothing heavy."""
    from .plugin.main import FbpLandcoverPlugin

    return FbpLandcoverPlugin(iface)
