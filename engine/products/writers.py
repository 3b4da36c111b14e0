"""The rasters and pictures a mapping run writes, each into a temporary file of ``io.atomic``.

The class raster is a tiled, compressed uint8 GeoTIFF with nodata 0, the official colour table, category
names, a raster attribute table, overviews and metadata; the confidence raster is float32 with nodata -1;
the quicklook is a PNG with a legend of the classes present.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal

from .. import classes
from ..io.gdal import quiet_deletion, warnings_kept_unless_failed

gdal.UseExceptions()

# NUM_THREADS: DEFLATE blocks are compressed on all cores (the same pixels, a faster finish: bench/README.md).
# ZLEVEL=1: a whole scene's class map compresses ~3x faster than at the default level 6 for ~30 % more bytes
# (6.3 -> 8.3 MB for 50 Mpx with overviews), ~0.5 s of a 10 s mapping run on 2 cores (bench/README.md).
CREATION_OPTIONS = ["TILED=YES", "BLOCKXSIZE=512", "BLOCKYSIZE=512", "COMPRESS=DEFLATE", "ZLEVEL=1",
                    "BIGTIFF=IF_SAFER", "NUM_THREADS=ALL_CPUS"]
CONFIDENCE_NODATA = -1.0


class RasterWriter:
    """One-band GeoTIFF written block by block into a temporary file."""

    def __init__(self, tmp: Path, width: int, height: int, geotransform, projection: str,
                 dtype: int, nodata: float) -> None:
        self.path = tmp
        self.ds = gdal.GetDriverByName("GTiff").Create(str(tmp), width, height, 1, dtype, CREATION_OPTIONS)
        self.ds.SetGeoTransform(tuple(geotransform))
        if projection:
            self.ds.SetProjection(projection)
        self.band = self.ds.GetRasterBand(1)
        self.band.SetNoDataValue(nodata)

    def write(self, x: int, y: int, block: np.ndarray) -> None:
        self.band.WriteArray(block, x, y)

    def finish(self, resampling: str, metadata: dict[str, str]) -> None:
        self.ds.SetMetadata({k: str(v) for k, v in metadata.items()})
        with warnings_kept_unless_failed():
            self.band.FlushCache()
        levels, size = [], max(self.ds.RasterXSize, self.ds.RasterYSize)
        while size // (2 ** (len(levels) + 1)) >= 256:
            levels.append(2 ** (len(levels) + 1))
        if levels:
            # GDAL 3.6 warns "Computing overviews on palette index raster bands without a palette" for MODE
            # on a paletted band even though the palette is set; MODE only picks existing class values
            # (tested), so that warning is noise for the user and is silenced here alone.
            gdal.PushErrorHandler("CPLQuietErrorHandler")
            threads = gdal.GetConfigOption("GDAL_NUM_THREADS")
            if threads is None:  # overviews computed on all cores too, unless the user chose otherwise
                gdal.SetConfigOption("GDAL_NUM_THREADS", "ALL_CPUS")
            try:
                self.ds.BuildOverviews(resampling, levels)
            finally:
                gdal.SetConfigOption("GDAL_NUM_THREADS", threads)
                gdal.PopErrorHandler()
        with warnings_kept_unless_failed():
            self.ds.FlushCache()
        self.band = None
        self.ds = None

    def close(self) -> None:
        """Flush and close (a write error raises: a file with holes is never taken as complete)."""
        self.band = None
        ds, self.ds = self.ds, None
        if ds is not None:
            ds.FlushCache()
            del ds

    def abandon(self) -> None:
        """Drop the dataset of a failed run without raising: after a failed write (a full disk) GDAL's flush
        on close fails again, and a failure in a destructor would print "Exception ignored" noise after the
        real error."""
        self.band = None
        ds, self.ds = self.ds, None
        if ds is not None:
            with quiet_deletion():
                del ds


def class_writer(tmp: Path, width: int, height: int, geotransform, projection: str) -> RasterWriter:
    w = RasterWriter(tmp, width, height, geotransform, projection, gdal.GDT_Byte, 0)
    w.band.SetColorTable(classes.gdal_color_table())
    w.band.SetCategoryNames(classes.names())
    w.band.SetDefaultRAT(classes.gdal_attribute_table())
    w.band.SetDescription("FBP land-cover class")
    return w


def confidence_writer(tmp: Path, width: int, height: int, geotransform, projection: str) -> RasterWriter:
    w = RasterWriter(tmp, width, height, geotransform, projection, gdal.GDT_Float32, CONFIDENCE_NODATA)
    w.band.SetDescription("confidence (1 - normalised entropy)")
    return w


def quicklook_png(class_path: Path, png: Path, max_size: int = 1024,
                  present: list[int] | None = None) -> None:
    """A PNG picture of the class map (longest side <= max_size) with a legend of the classes present."""
    from PIL import Image, ImageDraw

    ds = gdal.Open(str(class_path))
    scale = max(ds.RasterXSize, ds.RasterYSize) / max_size
    w = max(1, round(ds.RasterXSize / max(scale, 1)))
    h = max(1, round(ds.RasterYSize / max(scale, 1)))
    data = ds.GetRasterBand(1).ReadAsArray(buf_xsize=w, buf_ysize=h,
                                           resample_alg=gdal.GRIORA_NearestNeighbour)
    ds = None
    lut = np.array([c.rgb for c in classes.CLASSES] + [(0, 0, 0)] * (256 - len(classes.CLASSES)), np.uint8)
    rgb = lut[data]
    rgb[data == 0] = (255, 255, 255)
    shown = present if present is not None else sorted(int(v) for v in np.unique(data) if v)
    row_h, legend_w = 16, 190
    canvas = Image.new("RGB", (w + legend_w, max(h, row_h * (len(shown) + 2))), "white")
    canvas.paste(Image.fromarray(rgb), (0, 0))
    draw = ImageDraw.Draw(canvas)
    draw.text((w + 10, 4), "FBP land cover", fill="black")
    for k, idx in enumerate(shown):
        c = classes.CLASSES[idx]
        top = row_h * (k + 1) + 6
        draw.rectangle([w + 10, top, w + 22, top + 11], fill=c.rgb, outline="black")
        draw.text((w + 28, top), f"{idx} {c.name}", fill="black")
    canvas.save(png, format="PNG")
