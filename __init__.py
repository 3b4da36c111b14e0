"""FBP Land Cover: a QGIS plugin that maps 24 Five-Billion-Pixels land-cover classes."""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    """Called by QGIS to load the plugin; imports nothing heavy. The engine folder installed by
    'Install the engine' goes on sys.path first, before anything can import the engine's packages."""
    from .plugin.engine_folder import activate_at_start

    activate_at_start()
    from .plugin.main import FbpLandcoverPlugin

    return FbpLandcoverPlugin(iface)
