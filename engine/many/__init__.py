"""Country-scale mapping: many scenes -> per-scene maps -> one mosaic, resumable, optionally on Dask."""

from .job import ManyJob, ManyResult, map_many

__all__ = ["ManyJob", "ManyResult", "map_many"]
