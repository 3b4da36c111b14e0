"""The fbp_landcover engine: everything that maps land cover, and nothing that knows QGIS or Qt."""

__version__ = "0.1.0"
