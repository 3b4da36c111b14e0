"""A class map re-coded to a coarser legend (``engine/legends/*.json``: ``gid5``, ``coarse``, or a legend
file): a uint8 GeoTIFF with nodata 0, the legend's colour table and class names, written through
``io.atomic``."""

from __future__ import annotations

import os

import numpy as np
from osgeo import gdal

from .. import classes
from ..io.atomic import RASTER_SUFFIXES, AtomicFiles, check_outputs
from ..io.gdal import open_dataset
from ..progress import CancelFn, Progress, ProgressFn
from .writers import RasterWriter

gdal.UseExceptions()

ROWS = 512  # rows re-coded per read


def collapse_raster(source: str | os.PathLike, legend: str, output: str | os.PathLike, *,
                    overwrite: bool = False,
                    progress: ProgressFn | None = None, is_cancelled: CancelFn | None = None) -> str:
    """Write the FBP class raster ``source`` re-coded to ``legend`` as ``output``; returns the output's
    path."""
    prog = Progress(progress, is_cancelled)
    collapse = classes.load_collapse(legend)
    (out,) = check_outputs([("collapsed map", output, RASTER_SUFFIXES)], [("class map", source)], overwrite)
    src = open_dataset(os.fspath(source))
    band = src.GetRasterBand(1)
    table = np.array(collapse.lookup_table(), np.uint8)
    width, height = src.RasterXSize, src.RasterYSize
    with AtomicFiles() as files:
        writer = files.closing(RasterWriter(files.temp_for(out), width, height, src.GetGeoTransform(),
                                            src.GetProjection(), gdal.GDT_Byte, 0))
        writer.band.SetColorTable(collapse.gdal_color_table())
        writer.band.SetCategoryNames(collapse.names())
        for y in range(0, height, ROWS):
            prog.check()
            n = min(ROWS, height - y)
            block = band.ReadAsArray(0, y, width, n)
            writer.write(0, y, table[np.clip(block, 0, 255).astype(np.uint8)])
            prog((y + n) / height, f"Re-coding to the {collapse.name} legend")
        writer.finish("MODE", {"FBP_LEGEND": collapse.name})
    return str(out)
