"""Mapping one raster: the request, the run (map_landcover) and its result. This room sits to the right of
inference, products and training because a run uses all three (quick adaptation, prediction, the files)."""

from .request import MapRequest, MapResult
from .run import map_landcover

__all__ = ["MapRequest", "MapResult", "map_landcover"]
