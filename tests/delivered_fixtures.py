"""Copies of the product fixtures (../shared/data/products) with chosen pixels written in, for tests of what
the engine reads from a product. The fixtures' Sentinel-2 band files read as zeros; a copy replaces the
files a test writes to with tiled, sparse GeoTIFFs of the same grid and name (a few kB, not 241 MB)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from osgeo import gdal

gdal.UseExceptions()

L2A = ("sentinel2/fake_l2a_processing_baseline_5_09/"
       "S2B_MSIL2A_20230823T095559_N0509_R122_T34UCF_20230823T124759.SAFE")
L1C = ("sentinel2/fake_l1c_processing_baseline_5_09/"
       "S2B_MSIL1C_20230823T095559_N0509_R122_T34UCF_20230823T120234.SAFE")
L2A_0208 = "sentinel2/fake_l2a_MSIL2A/S2A_MSIL2A_20180818T094031_N0208_R036_T34VFJ_20180818T120345.SAFE"
L2A_ZIP = "sentinel2/S2B_MSIL2A_20230823T095559_N0509_R122_T34UCF_20230823T124759.SAFE.zip"
UDM2 = "planetscope/20151119_025740_0c74_3B_udm2_clip.tif"
SID = "20151119_025740_0c74"  # the PlanetScope scene id of the UDM2 and XML fixtures


def copy_product(products: Path, rel: str, dst: Path) -> Path:
    """A sparse-preserving copy of a product folder under ``dst``."""
    out = dst / Path(rel).name
    shutil.copytree(products / rel, out)
    return out


def band_file(safe: Path, pattern: str) -> Path:
    found = sorted(safe.glob(f"GRANULE/*/IMG_DATA/**/{pattern}"))
    assert found, pattern
    return found[0]


def write_window(path: Path, values: np.ndarray, x: int = 0, y: int = 0) -> None:
    """Replace the 1-band raster ``path`` by a sparse tiled GeoTIFF of its grid with ``values`` at (x, y)."""
    src = gdal.Open(str(path))
    w, h, gt, wkt = src.RasterXSize, src.RasterYSize, src.GetGeoTransform(), src.GetProjection()
    dtype = src.GetRasterBand(1).DataType
    src = None
    path.unlink()
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, 1, dtype,
                                              ["TILED=YES", "COMPRESS=DEFLATE", "SPARSE_OK=TRUE"])
    ds.SetGeoTransform(gt)
    ds.SetProjection(wkt)
    ds.GetRasterBand(1).WriteArray(values, x, y)
    ds = None


def planet_scene(products, folder, name: str, bands: int = 4, descriptions=None, dn: int = 1500):
    """A PlanetScope image named as Planet names it, on the UDM2's grid, with the UDM2 and XML beside it."""
    udm = gdal.Open(str(products / UDM2))
    path = folder / name
    ds = gdal.GetDriverByName("GTiff").Create(str(path), udm.RasterXSize, udm.RasterYSize, bands,
                                              gdal.GDT_UInt16, ["TILED=YES", "COMPRESS=DEFLATE"])
    ds.SetGeoTransform(udm.GetGeoTransform())
    ds.SetProjection(udm.GetProjection())
    for b in range(bands):
        band = ds.GetRasterBand(b + 1)
        band.Fill(dn + 100 * b)
        if descriptions:
            band.SetDescription(descriptions[b])
    ds = None
    shutil.copy(products / UDM2, folder)
    shutil.copy(products / f"planetscope/{SID}_3B_AnalyticMS_metadata_clip.xml", folder)
    return path
