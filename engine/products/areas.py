"""Per-class areas with the true area of each pixel.

Projected CRS: every pixel has the same area, |a·e − b·d| of the geotransform in the CRS's linear
unit, converted to square metres. Geographic CRS: a pixel's area depends on its latitude; the
exact area of an ellipsoidal quadrangle between latitudes φ1 and φ2 and Δλ of longitude is
Δλ·b²·[F(φ2) − F(φ1)] with F(φ) = sinφ / (2(1 − e²sin²φ)) + ln((1 + e sinφ)/(1 − e sinφ)) / (4e).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from osgeo import gdal

from .. import classes
from ..errors import FbpError
from ..io.atomic import AtomicFiles
from ..io.gdal import ellipsoid, srs

gdal.UseExceptions()


def _authalic_f(phi: np.ndarray, e: float) -> np.ndarray:
    s = np.sin(phi)
    return s / (2 * (1 - e * e * s * s)) + np.log((1 + e * s) / (1 - e * s)) / (4 * e)


NO_GEOTRANSFORM = (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # what GDAL reports for a raster without georeferencing


def area_warning(geotransform, projection: str) -> str | None:
    """Why a raster's areas are not real areas (no georeferencing, no CRS), or None when they are."""
    if geotransform is None or tuple(geotransform) == NO_GEOTRANSFORM:
        return ("the raster has no georeferencing, so its areas count each pixel as 1 m × 1 m and are not "
                "real areas; georeference it (or map a georeferenced raster) for areas in hectares")
    if srs(projection) is None:
        return (f"the raster has no coordinate reference system, so its areas take its pixel size "
                f"({abs(geotransform[1]):g} × {abs(geotransform[5]):g}) as metres, which may be wrong; "
                "assign its CRS for true areas")
    return None


class PixelArea:
    """Area in m² of the pixels of a row, for a raster's geotransform and CRS (``warning``: why they are not
    real areas, or None)."""

    def __init__(self, geotransform, projection: str) -> None:
        self.warning = area_warning(geotransform, projection)
        geotransform = NO_GEOTRANSFORM if geotransform is None else geotransform
        a, b, d, e = geotransform[1], geotransform[2], geotransform[4], geotransform[5]
        self.gt = geotransform
        ref = srs(projection)
        self.geographic = bool(ref is not None and ref.IsGeographic())
        if self.geographic:
            if b != 0 or d != 0:
                raise FbpError("Areas on a rotated geographic grid are not supported; warp the raster first.")
            self.semi_major, flat = ellipsoid(ref)
            self.semi_minor = self.semi_major * (1 - flat)
            self.ecc = math.sqrt(flat * (2 - flat))
            self.to_radians = ref.GetAngularUnits()  # radians per angular unit
        else:
            unit = ref.GetLinearUnits() if ref is not None else 1.0
            self.constant = abs(a * e - b * d) * unit * unit

    def row_area(self, y: int) -> float:
        """Area (m²) of one pixel of row ``y``."""
        if not self.geographic:
            return self.constant
        return float(self.rows_area(y, 1)[0])

    def rows_area(self, y: int, n: int) -> np.ndarray:
        if not self.geographic:
            return np.full(n, self.constant)
        gt = self.gt
        lat_edges = (gt[3] + gt[5] * np.arange(y, y + n + 1)) * self.to_radians
        dlon = abs(gt[1]) * self.to_radians
        if self.ecc == 0:
            band = np.abs(np.diff(np.sin(lat_edges))) * self.semi_major**2
        else:
            band = np.abs(np.diff(_authalic_f(lat_edges, self.ecc))) * self.semi_minor**2
        return band * dlon


class AreaCounter:
    """Accumulates per-class pixel counts and areas block by block."""

    def __init__(self, geotransform, projection: str) -> None:
        self.pixel_area = PixelArea(geotransform, projection)
        self.pixels = np.zeros(256, dtype=np.int64)
        self.area_m2 = np.zeros(256, dtype=np.float64)
        self.masked_pixels = 0
        self.masked_m2 = 0.0

    def add(self, y: int, block: np.ndarray) -> None:
        rows = self.pixel_area.rows_area(y, block.shape[0])
        for r in range(block.shape[0]):
            counts = np.bincount(block[r].ravel(), minlength=256)
            self.pixels += counts
            self.area_m2 += counts * rows[r]

    def add_masked(self, y: int, masked: np.ndarray) -> None:
        """Count the pixels a mask took out of rows ``y``.. (bool, True = masked)."""
        per_row = masked.sum(axis=1)
        self.masked_pixels += int(per_row.sum())
        self.masked_m2 += float((per_row * self.pixel_area.rows_area(y, masked.shape[0])).sum())

    def masked_totals(self, grid_pixels: int) -> dict:
        """Masked pixels, km² and share of the grid's pixels."""
        return {"masked_pixels": self.masked_pixels, "masked_km2": round(self.masked_m2 / 1e6, 6),
                "masked_share": round(self.masked_pixels / grid_pixels, 6) if grid_pixels else 0.0}

    def table(self) -> list[dict]:
        """Rows for classes 1..24: index, name, hex, pixels, hectares, km2, percent (of mapped area)."""
        mapped = self.area_m2[1 : classes.NUM_OUTPUTS].sum()
        out = []
        for c in classes.CLASSES[1:]:
            m2 = float(self.area_m2[c.index])
            out.append({
                "index": c.index, "name": c.name, "hex": c.hex, "pixels": int(self.pixels[c.index]),
                "hectares": round(m2 / 1e4, 4), "km2": round(m2 / 1e6, 6),
                "percent": round(100.0 * m2 / mapped, 4) if mapped else 0.0,
            })
        return out


def table_csv(rows: list[dict], masked: dict | None = None) -> str:
    """The CSV area table; with ``masked`` a last row (index empty, name "masked") says what masks took
    out."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    if masked is not None:
        km2 = masked["masked_km2"]
        writer.writerow({"index": "", "name": "masked", "hex": "", "pixels": masked["masked_pixels"],
                         "hectares": round(km2 * 100, 4), "km2": km2, "percent": ""})
    return buf.getvalue()


def table_json(rows: list[dict], source: str, masked: dict | None = None, warning: str | None = None) -> str:
    total = {
        "pixels": sum(r["pixels"] for r in rows),
        "hectares": round(sum(r["hectares"] for r in rows), 4),
        "km2": round(sum(r["km2"] for r in rows), 6),
    }
    doc = {"map": source, "classes": rows, "total": total}
    if masked is not None:
        doc["masked"] = masked
    if warning:
        doc["area_warning"] = warning
    return json.dumps(doc, indent=2)


def json_beside(csv_path: str | os.PathLike) -> Path:
    """The JSON area table written beside a CSV one: same name, suffix .json."""
    return Path(csv_path).with_suffix(".json")


def write_area_tables(rows: list[dict], csv_path: str | os.PathLike, source: str,
                      files: AtomicFiles | None = None, masked: dict | None = None,
                      warning: str | None = None) -> Path:
    """Write the area table as CSV and, beside it, as JSON; returns the JSON's path.

    With ``files`` the two join that set of outputs (committed by its owner), else they are committed now."""
    json_path = json_beside(csv_path)
    with (AtomicFiles() if files is None else nullcontext(files)) as own:
        own.write_text(csv_path, table_csv(rows, masked))
        own.write_text(json_path, table_json(rows, source, masked, warning))
    return json_path


def count_raster(path: str, block_rows: int = 512) -> AreaCounter:
    """Area counts of an existing class raster, read block by block."""
    try:
        ds = gdal.Open(str(path))
    except RuntimeError as exc:
        raise FbpError(f"Cannot read the class raster {path}: GDAL could not open it; "
                       "give a GeoTIFF made by fbp-landcover map.") from exc
    counter = AreaCounter(ds.GetGeoTransform(), ds.GetProjection())
    band = ds.GetRasterBand(1)
    for y in range(0, ds.RasterYSize, block_rows):
        n = min(block_rows, ds.RasterYSize - y)
        block = band.ReadAsArray(0, y, ds.RasterXSize, n)
        if block.dtype != np.uint8:
            block = np.clip(block, 0, 255).astype(np.uint8)
        counter.add(y, block)
    return counter
