"""The fbp_landcover engine: everything that maps land cover, and nothing that knows QGIS or Qt."""

__version__ = "0.1.0"
SOFTWARE = f"fbp_landcover {__version__}"  # what files written by the engine record as their software
