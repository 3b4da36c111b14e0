"""GDAL in one place: opening a raster with the engine's errors, a CRS from WKT (one axis order), one
same-grid check with one tolerance, a raster seen on another grid (a warped VRT), the numpy type of a band,
and a geographic pixel's size in metres on the CRS's ellipsoid."""

from __future__ import annotations

import math
import os
import sys
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
from osgeo import gdal, gdal_array, osr

from ..errors import FbpError

gdal.UseExceptions()

GRID_TOLERANCE = 1e-3  # of a pixel: two grids whose corners agree this closely are the same grid


def open_dataset(path: str | os.PathLike, raw: bool = False) -> gdal.Dataset:
    """gdal.Open with the engine's errors (missing file, not a raster); ``raw``: GTIFF_RAW: for GeoTIFFs."""
    path = os.fspath(path)
    if not path.startswith("/vsi") and not os.path.exists(path):
        raise FbpError(f"{path} does not exist; check the path to the input raster.")
    why = "unknown format"
    try:
        ds = gdal.Open(path)
    except RuntimeError as exc:
        ds = None
        why = (str(exc).strip().splitlines() or [why])[0]
    if ds is None:
        raise FbpError(
            f"{path} is not a raster GDAL could read ({why}); give a GeoTIFF or another GDAL-readable image."
        )
    if raw and ds.GetDriver().ShortName == "GTiff":
        ds = gdal.Open("GTIFF_RAW:" + path)
    return ds


def srs(wkt: str | None) -> osr.SpatialReference | None:
    """The CRS of a WKT string with x = easting/longitude first (GDAL's traditional GIS order), or None."""
    if not wkt:
        return None
    ref = osr.SpatialReference()
    ref.ImportFromWkt(wkt)
    ref.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return ref


class RasterGrid(NamedTuple):
    """A raster's pixel grid: size, geotransform (None without georeferencing) and CRS (WKT, "" without)."""

    width: int
    height: int
    geotransform: tuple[float, ...] | None
    projection: str

    @classmethod
    def of(cls, ds: gdal.Dataset) -> RasterGrid:
        gt = ds.GetGeoTransform(can_return_null=True)
        return cls(ds.RasterXSize, ds.RasterYSize, None if gt is None else tuple(gt),
                   ds.GetProjection() or "")


def _corners(gt: tuple[float, ...], width: int, height: int) -> list[tuple[float, float]]:
    return [(gt[0] + gt[1] * c + gt[2] * r, gt[3] + gt[4] * c + gt[5] * r)
            for c, r in ((0, 0), (width, 0), (0, height), (width, height))]


def same_grid(a: RasterGrid, b: RasterGrid) -> bool:
    """True when ``a`` and ``b`` have the same pixels: the same size; where both are georeferenced, corners
    within GRID_TOLERANCE of a pixel; where both have a CRS, the same CRS. A raster without georeferencing
    (or without a CRS) is taken to lie on the grid of any raster of its size."""
    if (a.width, a.height) != (b.width, b.height):
        return False
    if a.geotransform is not None and b.geotransform is not None:
        pixel = max(abs(v) for v in (a.geotransform[1], a.geotransform[2], a.geotransform[4],
                                     a.geotransform[5]))
        tol = GRID_TOLERANCE * pixel
        for (xa, ya), (xb, yb) in zip(_corners(a.geotransform, a.width, a.height),
                                      _corners(b.geotransform, b.width, b.height), strict=True):
            if abs(xa - xb) > tol or abs(ya - yb) > tol:
                return False
    sa, sb = srs(a.projection), srs(b.projection)
    return sa is None or sb is None or bool(sa.IsSame(sb))


def warp_to_grid(src: gdal.Dataset | str, geotransform: tuple[float, ...], width: int, height: int,
                 projection: str | None = None, dst: str = "", **options) -> gdal.Dataset:
    """``src`` seen on the north-up grid (geotransform, width, height), in ``projection`` when given, by
    nearest neighbour (classes, nodata and sensor values stay exact), as a VRT in memory or in the file
    ``dst``.
    Other gdal.Warp options (dstAlpha, srcNodata, dstNodata, errorThreshold, ...) are passed on."""
    x0, px, _, y0, _, py = geotransform
    bounds = (x0, y0 + py * height, x0 + px * width, y0)
    return gdal.Warp(dst, src, format="VRT", outputBounds=bounds, width=width, height=height,
                     dstSRS=projection or None, resampleAlg="near", **options)


def numpy_dtype(band: gdal.Band) -> str:
    """The numpy type name of a band's pixels ("uint16", "float32", ...)."""
    code = gdal_array.GDALTypeCodeToNumericTypeCode(band.DataType)
    return np.dtype(code).name if code is not None else gdal.GetDataTypeName(band.DataType).lower()


def ellipsoid(ref: osr.SpatialReference) -> tuple[float, float]:
    """(semi-major axis in metres, flattening) of a CRS's ellipsoid (flattening 0 for a sphere)."""
    inv_f = ref.GetInvFlattening()
    return ref.GetSemiMajor(), 0.0 if inv_f == 0 else 1.0 / inv_f


def geographic_pixel_metres(geotransform: tuple[float, ...], height: int,
                            ref: osr.SpatialReference) -> tuple[float, float]:
    """(x, y) size in metres of a geographic raster's pixels at its middle row, on the CRS's ellipsoid:
    Δλ·N·cos φ across and Δφ·M along the meridian (N, M: the radii of curvature at latitude φ)."""
    a, f = ellipsoid(ref)
    e2 = f * (2 - f)
    to_radians = ref.GetAngularUnits()  # radians per angular unit
    phi = (geotransform[3] + geotransform[5] * height / 2) * to_radians
    w = math.sqrt(1 - e2 * math.sin(phi) ** 2)
    n, m = a / w, a * (1 - e2) / w**3
    return abs(geotransform[1]) * to_radians * n * math.cos(phi), abs(geotransform[5]) * to_radians * m


@contextmanager
def quiet_deletion():
    """Within: GDAL objects deleted after a failed write neither print GDAL's errors nor Python's "Exception
    ignored" report (sys.unraisablehook; GDAL's process-wide exception mode is left alone)."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda _unraisable: None
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        yield
    finally:
        gdal.PopErrorHandler()
        sys.unraisablehook = hook


@contextmanager
def warnings_kept_unless_failed():
    """Within: GDAL's warnings are held back; re-emitted when the block succeeds, dropped when it raises (a
    write that fails on a full disk makes libtiff warn about the directory it could not finish, noise before
    the sentence the failure becomes)."""
    held: list[tuple[int, int, str]] = []
    gdal.PushErrorHandler(lambda cls, number, message: held.append((cls, number, message)))
    try:
        yield
    finally:
        gdal.PopErrorHandler()
    for cls, number, message in held:
        if cls == gdal.CE_Warning:
            gdal.Error(cls, number, message)
