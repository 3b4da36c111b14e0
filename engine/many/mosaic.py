"""One seamless mosaic of many per-scene class maps: the grid, the overlap rule, the VRT and the COG.

The mosaic grid is one CRS (default: the first scene's) and one resolution (default: the finest pixel
size of the scenes already in that CRS, else the finest of the scenes reprojected); it is aligned to the
first scene's pixels when that scene already has the mosaic's CRS and resolution, otherwise to whole
multiples of the resolution. Every scene's class and confidence
rasters are seen through a warped VRT on that grid (nearest neighbour, so classes are never blended and
the class and the confidence of a pixel always come from the same source pixel), and the mosaic is
composed block by block:

* ``confidence`` (default): the scene with the higher confidence wins a pixel; equal confidences go to
  the scene listed first;
* ``recent``: the most recent scene wins; the date is the first YYYYMMDD / YYYY-MM-DD / YYYY_MM_DD in
  the file name, else the file's modification time; equal dates go to the scene listed first;
* ``first``: the scene listed first wins.

A pixel is taken from a lower-priority scene wherever the winner has no data (class 0).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import gdal, osr

from .. import classes
from ..errors import FbpError
from ..io.atomic import AtomicFiles, atomic_path, partial_path, sidecars
from ..io.gdal import srs, warp_to_grid
from ..products.areas import AreaCounter
from ..products.writers import CONFIDENCE_NODATA, class_writer, confidence_writer
from ..progress import Progress

gdal.UseExceptions()

RULES = ("confidence", "recent", "first")
BLOCK = 1024
_EPS = 1e-6
_DATE = re.compile(r"((?:19|20)\d\d)[-_]?(0[1-9]|1[0-2])[-_]?(0[1-9]|[12]\d|3[01])(?!\d)")
COG_OPTIONS = ["COMPRESS=DEFLATE", "BLOCKSIZE=512", "BIGTIFF=IF_SAFER", "OVERVIEWS=IGNORE_EXISTING"]


@dataclass(frozen=True)
class Grid:
    projection: str  # WKT
    x0: float  # left edge
    y0: float  # top edge
    res: float
    width: int
    height: int

    @property
    def geotransform(self) -> tuple[float, ...]:
        return (self.x0, self.res, 0.0, self.y0, 0.0, -self.res)


@dataclass(frozen=True)
class Part:
    """A scene placed on the mosaic grid: its window and the warped VRTs of its class and confidence."""

    x: int
    y: int
    width: int
    height: int
    classes: str
    confidence: str | None


def parse_crs(text: str) -> str:
    """WKT for 'EPSG:32650', a WKT string, a PROJ string… (anything OSR accepts)."""
    ref = osr.SpatialReference()
    try:
        ref.SetFromUserInput(text)
    except RuntimeError:
        raise FbpError(f"The mosaic CRS {text!r} is not one GDAL understands; give it as EPSG:xxxx."
                       ) from None
    return ref.ExportToWkt()


def scene_date(path: str) -> tuple[str, str]:
    """(ISO date, where it came from) for the 'recent' rule: a date in the file name, else the mtime."""
    m = _DATE.search(Path(path).name)
    if m:
        return f"{m.group(1)}-{m.group(2)}-{m.group(3)}", "file name"
    mtime = os.stat(path).st_mtime
    return _dt.datetime.fromtimestamp(mtime, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S"), "file time"


def priority(dates: list[str], rule: str) -> list[int]:
    """Scene indices, the highest priority first ('first'/'confidence': listed order; 'recent': newest)."""
    if rule not in RULES:
        raise FbpError(f"Unknown overlap rule {rule!r}; choose one of {', '.join(RULES)}.")
    order = list(range(len(dates)))
    if rule == "recent":
        order.sort(key=lambda i: dates[i], reverse=True)  # stable: equal dates keep the listed order
    return order


def composite(class_blocks: list[np.ndarray], conf_blocks: list[np.ndarray | None],
              rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Combine same-shape blocks given in priority order: (classes uint8, confidence float32).

    ``confidence``: the highest confidence among scenes with data (class > 0) wins, ties to the earlier
    block; other rules: the earliest block with data wins. Class 0 / confidence -1 where none has data.
    """
    shape = class_blocks[0].shape
    out_c = np.zeros(shape, np.uint8)
    out_f = np.full(shape, CONFIDENCE_NODATA, np.float32)
    for cls, conf in zip(class_blocks, conf_blocks, strict=True):
        valid = cls > 0
        if conf is None:
            conf = np.where(valid, 0.0, CONFIDENCE_NODATA).astype(np.float32)
        if rule == "confidence":
            take = valid & ((out_c == 0) | (conf > out_f))
        else:
            take = valid & (out_c == 0)
        out_c[take] = cls[take]
        out_f[take] = conf[take]
    return out_c, out_f


def _footprint(path: str, wkt: str) -> tuple[float, float, float, float, float, bool]:
    """(xmin, ymin, xmax, ymax, pixel size, already in that CRS) of a raster in the CRS ``wkt``."""
    ds = gdal.Open(path)
    src = ds.GetSpatialRef()
    dst = srs(wkt)
    if src is None:
        raise FbpError(f"The scene map {path} has no CRS; "
                       "give the input raster a CRS so it can be mosaicked.")
    if src.IsSame(dst):
        gt, w, h = ds.GetGeoTransform(), ds.RasterXSize, ds.RasterYSize
    else:
        name = f"/vsimem/fbp_fp_{os.getpid()}_{id(ds)}.vrt"
        warped = gdal.Warp(name, ds, format="VRT", dstSRS=wkt)
        gt, w, h = warped.GetGeoTransform(), warped.RasterXSize, warped.RasterYSize
        warped = None
        gdal.Unlink(name)
    if gt[2] or gt[4]:
        raise FbpError(f"The scene map {path} is on a rotated grid; warp it north-up first.")
    xs = (gt[0], gt[0] + gt[1] * w)
    ys = (gt[3], gt[3] + gt[5] * h)
    return min(xs), min(ys), max(xs), max(ys), min(abs(gt[1]), abs(gt[5])), bool(src.IsSame(dst))


def choose_grid(class_paths: list[str], crs: str | None = None, resolution: float | None = None) -> Grid:
    """The mosaic grid covering every scene (see the module docstring for the alignment)."""
    first = gdal.Open(class_paths[0])
    wkt = parse_crs(crs) if crs else first.GetProjection()
    prints = [_footprint(p, wkt) for p in class_paths]
    native = [f[4] for f in prints if f[5]]  # a reprojected scene's pixel size is only approximate
    res = float(resolution) if resolution else min(native or [f[4] for f in prints])
    if not res > 0:
        raise FbpError(f"The mosaic resolution ({resolution}) must be a positive number of CRS units.")
    gt0 = first.GetGeoTransform()
    same = srs(wkt).IsSame(first.GetSpatialRef()) and math.isclose(abs(gt0[1]), res,
                                                                                         rel_tol=1e-9)
    ax, ay = (gt0[0], gt0[3]) if same else (0.0, 0.0)
    xmin, ymin = min(f[0] for f in prints), min(f[1] for f in prints)
    xmax, ymax = max(f[2] for f in prints), max(f[3] for f in prints)
    left = ax + math.floor((xmin - ax) / res + _EPS) * res
    right = ax + math.ceil((xmax - ax) / res - _EPS) * res
    top = ay + math.ceil((ymax - ay) / res - _EPS) * res
    bottom = ay + math.floor((ymin - ay) / res + _EPS) * res
    return Grid(wkt, left, top, res, int(round((right - left) / res)), int(round((top - bottom) / res)))


def place(grid: Grid, class_path: str, conf_path: str | None, parts_dir: Path, name: str) -> Part | None:
    """Warped VRTs of a scene's class (and confidence) raster on its window of the grid (None if outside)."""
    xmin, ymin, xmax, ymax, _, _ = _footprint(class_path, grid.projection)
    r = grid.res
    ix0 = max(0, math.floor((xmin - grid.x0) / r + _EPS))
    ix1 = min(grid.width, math.ceil((xmax - grid.x0) / r - _EPS))
    iy0 = max(0, math.floor((grid.y0 - ymax) / r + _EPS))
    iy1 = min(grid.height, math.ceil((grid.y0 - ymin) / r - _EPS))
    if ix1 <= ix0 or iy1 <= iy0:
        return None
    window = ((grid.x0 + ix0 * r, r, 0.0, grid.y0 - iy0 * r, 0.0, -r), ix1 - ix0, iy1 - iy0, grid.projection)
    cls_vrt = parts_dir / f"{name}.classes.vrt"
    _warp_vrt(cls_vrt, class_path, window, dstNodata=0)
    conf_vrt = None
    if conf_path:
        conf_vrt = parts_dir / f"{name}.confidence.vrt"
        _warp_vrt(conf_vrt, conf_path, window, dstNodata=CONFIDENCE_NODATA)
    return Part(ix0, iy0, ix1 - ix0, iy1 - iy0, str(cls_vrt), str(conf_vrt) if conf_vrt else None)


def _warp_vrt(dst: Path, src: str, window: tuple, **options) -> None:
    """A VRT file of ``src`` warped onto ``window`` (geotransform, width, height, CRS), written beside ``dst``
    and renamed (so its relative paths hold)."""
    with atomic_path(dst) as tmp:
        ds = warp_to_grid(src, *window, dst=str(tmp), multithread=False, **options)
        del ds  # closing the dataset writes the VRT


def _read(path: str, x: int, y: int, w: int, h: int) -> np.ndarray:
    ds = gdal.Open(path)
    return ds.GetRasterBand(1).ReadAsArray(x, y, w, h)


def compose_blocks(grid: Grid, parts: list[Part], rule: str, sinks, prog: Progress,
                   block: int = BLOCK) -> None:
    """Compose the mosaic block by block; each sink is called as sink(x, y, classes, confidence)."""
    blocks = [(x, y) for y in range(0, grid.height, block) for x in range(0, grid.width, block)]
    for k, (bx, by) in enumerate(blocks):
        bw, bh = min(block, grid.width - bx), min(block, grid.height - by)
        cls_list, conf_list = [], []
        for p in parts:
            x0, y0 = max(bx, p.x), max(by, p.y)
            x1, y1 = min(bx + bw, p.x + p.width), min(by + bh, p.y + p.height)
            if x1 <= x0 or y1 <= y0:
                continue
            c = np.zeros((bh, bw), np.uint8)
            f = np.full((bh, bw), CONFIDENCE_NODATA, np.float32)
            sl = np.s_[y0 - by:y1 - by, x0 - bx:x1 - bx]
            c[sl] = _read(p.classes, x0 - p.x, y0 - p.y, x1 - x0, y1 - y0)
            if p.confidence:
                f[sl] = _read(p.confidence, x0 - p.x, y0 - p.y, x1 - x0, y1 - y0)
            cls_list.append(c)
            conf_list.append(f if p.confidence else None)
        if cls_list:
            out_c, out_f = composite(cls_list, conf_list, rule)
        else:
            out_c = np.zeros((bh, bw), np.uint8)
            out_f = np.full((bh, bw), CONFIDENCE_NODATA, np.float32)
        for sink in sinks:
            sink(bx, by, out_c, out_f)
        prog((k + 1) / len(blocks), f"Composing the mosaic: block {k + 1} of {len(blocks)}")


def _to_cog(src: Path, dst: Path, resampling: str) -> None:
    gdal.Translate(str(dst), str(src), format="COG",
                   creationOptions=COG_OPTIONS + [f"OVERVIEW_RESAMPLING={resampling}"]).FlushCache()


def build_vrt(dst: Path, parts: list[Part], grid: Grid) -> None:
    """A virtual mosaic of the scenes' class VRTs; later sources are drawn on top, so ``parts`` should be
    given lowest priority first. Coloured and named like the class rasters."""
    opts = gdal.BuildVRTOptions(outputBounds=(grid.x0, grid.y0 - grid.height * grid.res,
                                              grid.x0 + grid.width * grid.res, grid.y0),
                                xRes=grid.res, yRes=grid.res, srcNodata=0, VRTNodata=0)
    ds = gdal.BuildVRT(str(dst), [p.classes for p in parts], options=opts)
    band = ds.GetRasterBand(1)
    band.SetColorTable(classes.gdal_color_table())
    band.SetCategoryNames(classes.names())
    band.SetDescription("FBP land-cover class")
    ds.FlushCache()
    ds = None


def write_mosaic(grid: Grid, parts: list[Part], rule: str, outdir: Path, metadata: dict[str, str],
                 extra_sinks: list, prog: Progress, with_confidence: bool = True) -> tuple[dict, AreaCounter]:
    """Compose and write mosaic.tif (COG), mosaic_confidence.tif (COG) and mosaic.vrt atomically."""
    finals = {"classes": outdir / "mosaic.tif", "vrt": outdir / "mosaic.vrt"}
    if with_confidence:
        finals["confidence"] = outdir / "mosaic_confidence.tif"
    scratch: list[Path] = []

    def scratch_file(target: Path) -> Path:
        """A work file for ``target`` (the plain GeoTIFF the COG is made from), removed at the end."""
        scratch.append(partial_path(target))
        return scratch[-1]

    counter = AreaCounter(grid.geotransform, grid.projection)
    try:
        with AtomicFiles() as files:
            cw = files.closing(class_writer(scratch_file(finals["classes"]), grid.width, grid.height,
                                            grid.geotransform, grid.projection))
            fw = None
            if with_confidence:
                fw = files.closing(confidence_writer(scratch_file(finals["confidence"]), grid.width,
                                                     grid.height, grid.geotransform, grid.projection))

            def sink(x, y, c, f):
                cw.write(x, y, c)
                counter.add(y, c)
                if fw is not None:
                    fw.write(x, y, f)

            compose_blocks(grid, parts, rule, [sink, *extra_sinks], prog.stage(0.0, 0.8))
            for w in (cw, fw):
                if w is not None:
                    w.ds.SetMetadata(metadata)
                    w.close()
            prog.stage(0.8, 1.0)(0.0, "Writing the cloud-optimised GeoTIFF with overviews")
            _to_cog(cw.path, files.temp_for(finals["classes"]), "MODE")
            if fw is not None:
                _to_cog(fw.path, files.temp_for(finals["confidence"]), "AVERAGE")
            build_vrt(files.temp_for(finals["vrt"]), list(reversed(parts)), grid)
            prog.check()
    finally:
        for p in scratch:
            for q in (p, *sidecars(p)):
                q.unlink(missing_ok=True)
    return {k: str(v) for k, v in finals.items()}, counter
