"""Small rasters made by code for the tests (GDAL only, no QGIS)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal, osr

gdal.UseExceptions()

_GDAL_TYPES = {
    np.dtype("uint8"): gdal.GDT_Byte,
    np.dtype("uint16"): gdal.GDT_UInt16,
    np.dtype("int16"): gdal.GDT_Int16,
    np.dtype("int32"): gdal.GDT_Int32,
    np.dtype("float32"): gdal.GDT_Float32,
    np.dtype("float64"): gdal.GDT_Float64,
}


def write_raster(
    path: str | Path,
    array: np.ndarray,
    *,
    geotransform: tuple[float, ...] = (500000.0, 4.0, 0.0, 4000000.0, 0.0, -4.0),
    epsg: int | None = 32650,
    nodata: float | None = None,
    options: list[str] | None = None,
) -> Path:
    """Write a (bands, rows, cols) or (rows, cols) array as a GeoTIFF and return its path."""
    path = Path(path)
    if array.ndim == 2:
        array = array[None]
    bands, rows, cols = array.shape
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), cols, rows, bands, _GDAL_TYPES[array.dtype], options or []
    )
    ds.SetGeoTransform(geotransform)
    if epsg is not None:
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(epsg)
        ds.SetProjection(srs.ExportToWkt())
    for b in range(bands):
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(array[b])
        if nodata is not None:
            band.SetNoDataValue(nodata)
    ds = None
    return path


def random_scene(rows: int, cols: int, bands: int = 4, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    """A smooth random multi-band image (blobs, not white noise), for pipeline tests."""
    rng = np.random.default_rng(seed)
    small = rng.random((bands, max(2, rows // 16), max(2, cols // 16)))
    yi = np.linspace(0, small.shape[1] - 1, rows).astype(int)
    xi = np.linspace(0, small.shape[2] - 1, cols).astype(int)
    img = small[:, yi][:, :, xi] * 0.8 + rng.random((bands, rows, cols)) * 0.2
    top = 255 if dtype == np.uint8 else 1023
    return (img * top).astype(dtype)


def file_digest(path: str | Path) -> str:
    """sha256 of a file, to prove an input was not modified."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
