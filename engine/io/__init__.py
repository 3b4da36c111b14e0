"""Raster input and output plumbing: GDAL opening and grids, the one atomic-write mechanism, sensor profiles,
model input windows and normalisation. Imports nothing from the other rooms."""
