"""Everything of fbp_landcover that knows QGIS or Qt: plugin class, Processing provider, dock, styling."""
