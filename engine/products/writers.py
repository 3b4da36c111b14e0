"""Output files that appear only when complete.

Every raster is written to a hidden temporary file in the destination folder and renamed into place
only when everything succeeded; on failure or cancel the temporary files are removed. An existing
output is refused unless overwriting was asked for. The class raster is a tiled, compressed uint8
GeoTIFF with nodata 0, the official colour table, category names, a raster attribute table,
overviews and metadata; a QML sidecar makes QGIS style it with the 24 names.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from osgeo import gdal

from .. import classes
from ..errors import FbpError

gdal.UseExceptions()

# NUM_THREADS: DEFLATE blocks are compressed on all cores (same pixels; 1.6x faster finish on 2 cores).
CREATION_OPTIONS = ["TILED=YES", "BLOCKXSIZE=512", "BLOCKYSIZE=512", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER",
                    "NUM_THREADS=ALL_CPUS"]
CONFIDENCE_NODATA = -1.0


def check_destination(path: str | os.PathLike, overwrite: bool, what: str = "output") -> Path:
    """Refuse an existing file (unless overwrite) or a folder that cannot be written, before any work."""
    path = Path(path).expanduser().absolute()
    if path.exists() and not overwrite:
        raise FbpError(
            f"The {what} {path} already exists; choose another name or ask to overwrite it (--overwrite)."
        )
    if path.is_dir():
        raise FbpError(f"The {what} {path} is a folder; give a file name such as {path / 'landcover.tif'}.")
    folder = path.parent
    if not folder.is_dir():
        raise FbpError(f"The folder for the {what}, {folder}, does not exist; create it or choose another path.")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".fbp-write-test-"):
            pass
    except OSError as exc:
        raise FbpError(
            f"Cannot write the {what} into {folder} ({exc.strerror}); choose a folder you can write to."
        ) from exc
    return path


def _temp_name(final: Path) -> Path:
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.stem}.", suffix=".partial" + final.suffix)
    os.close(fd)
    os.unlink(name)
    return Path(name)


def _sidecars(path: Path) -> list[Path]:
    return [Path(str(path) + ".aux.xml"), Path(str(path) + ".ovr")]


class AtomicFiles:
    """A set of temporary files that are renamed into place together, or all removed."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []

    def temp_for(self, final: Path) -> Path:
        tmp = _temp_name(final)
        self._pending.append((tmp, final))
        return tmp

    def write_text(self, final: Path, text: str) -> None:
        tmp = self.temp_for(final)
        tmp.write_text(text, encoding="utf-8")

    def commit(self) -> None:
        for tmp, final in self._pending:
            for side_tmp, side_final in zip(_sidecars(tmp), _sidecars(final), strict=True):
                if side_tmp.exists():
                    os.replace(side_tmp, side_final)
                elif side_final.exists():
                    side_final.unlink()  # a stale sidecar of an overwritten file would mislead GDAL
            os.replace(tmp, final)  # the main file last: it appears only when complete
        self._pending.clear()

    def discard(self) -> None:
        for tmp, _ in self._pending:
            for p in [tmp, *_sidecars(tmp)]:
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass
        self._pending.clear()


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
        self.ds.FlushCache()
        self.band = None
        self.ds = None

    def close(self) -> None:
        self.band = None
        self.ds = None


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


def quicklook_png(class_path: Path, png: Path, max_size: int = 1024, present: list[int] | None = None) -> None:
    """A PNG picture of the class map (longest side <= max_size) with a legend of the classes present."""
    from PIL import Image, ImageDraw

    ds = gdal.Open(str(class_path))
    scale = max(ds.RasterXSize, ds.RasterYSize) / max_size
    w = max(1, round(ds.RasterXSize / max(scale, 1)))
    h = max(1, round(ds.RasterYSize / max(scale, 1)))
    data = ds.GetRasterBand(1).ReadAsArray(buf_xsize=w, buf_ysize=h, resample_alg=gdal.GRIORA_NearestNeighbour)
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
