"""Images placed only by rational polynomial coefficients (RPCs), as Gaofen-1/2 L1A scenes are: an ``.rpb``
/``.RPB`` beside the image, a ``_rpc.txt``, or RPC tags in the TIFF (GDAL reads all three into its "RPC"
metadata domain).

Such an image is orthorectified on the fly by GDAL's RPC transformer into a warped VRT on a north-up grid in
the UTM zone of the scene's centre, at the sensor's pixel size (the profile's GSD; otherwise the size GDAL
suggests), so windows are read and warped one at a time and memory stays flat. Terrain: a DEM when given
(RPC_DEM), else a constant height: the one given, else the RPCs' own HEIGHT_OFF (the scene's mean height).

An image with RPCs *and* a geotransform: the geotransform wins when it puts the image's centre within
``AGREE_PIXELS`` pixels of where the RPCs put it (an orthorectified product that kept its RPCs); otherwise the
RPCs win and the summary says the geotransform was ignored (GDAL's md_dg.tif: a geotransform in Brazil,
RPCs over Rome).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import replace
from pathlib import Path

from osgeo import gdal, osr

from ...errors import FbpError
from ..sensors import PROFILES
from . import Product

gdal.UseExceptions()

AGREE_PIXELS = 10
_GF_RE = re.compile(r"^(GF[12])_(PMS[12]|WFV[1-4])_.*?(MSS[12]|PAN[12])?\.tiff?$", re.IGNORECASE)


def _number(text: str | None) -> float | None:
    m = re.match(r"\s*([-+]?\d+(?:\.\d+)?)", text or "")
    return float(m.group(1)) if m else None


def gaofen_profile(path: str):
    """The sensor profile a Gaofen file name selects, with a reason, or (None, None)."""
    m = _GF_RE.match(Path(path).name)
    if not m:
        return None, None
    sat, cam, band = m.group(1).upper(), m.group(2).upper(), (m.group(3) or "").upper()
    if band.startswith("PAN"):
        raise FbpError(f"{path} is a {sat} panchromatic (PAN) file; the model needs the multispectral file "
                       f"(…-MSS{band[-1]}.tiff) of the same scene.")
    prof = PROFILES["gaofen2" if sat == "GF2" else "gaofen1"]
    if cam.startswith("WFV"):
        prof = replace(prof, gsd=16.0, title="Gaofen-1 WFV multispectral (B,G,R,NIR, 10-bit DN, 16 m)")
    return prof, f"the file name names {sat} {cam}{' ' + band if band else ''}"


def _utm_epsg(lon: float, lat: float) -> int:
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


def recognise(path: str, *, height: float | None = None, dem: str | None = None) -> Product | None:
    if path.startswith(("SENTINEL2", "/vsi")) or not Path(path).is_file():
        return None
    try:
        ds = gdal.Open(path)
    except RuntimeError:
        return None
    rpc = ds.GetMetadata("RPC") or {}
    if not rpc:
        return None
    h_off = _number(rpc.get("HEIGHT_OFF")) or 0.0
    if dem:
        if not os.path.exists(dem):
            raise FbpError(f"The DEM {dem} does not exist; give a DEM raster (heights in metres) or a "
                           "constant height.")
        t_opts, terrain = [f"RPC_DEM={dem}"], f"DEM {dem}"
    else:
        h = h_off if height is None else float(height)
        t_opts = [f"RPC_HEIGHT={h:g}"]
        terrain = (f"constant height {h:g} m ("
                   + ("the RPCs' HEIGHT_OFF, the scene's mean height" if height is None else "given") + ")")
    tr = gdal.Transformer(ds, None, ["METHOD=RPC", *t_opts])
    cx, cy = ds.RasterXSize / 2, ds.RasterYSize / 2
    ok, (lon, lat, _z) = tr.TransformPoint(0, cx, cy, 0)
    if not ok:
        raise FbpError(f"{path} has RPCs but GDAL's RPC transformer cannot place its centre; check its .rpb.")
    gt = ds.GetGeoTransform(can_return_null=True)
    notes = []
    profile, reason = gaofen_profile(path)
    if gt is not None and ds.GetProjection():
        gap_m, px_m = _gap(ds, gt, lon, lat)
        if gap_m <= AGREE_PIXELS * px_m:
            return None  # already orthorectified: read by its geotransform like any raster
        notes.append(f"the file's geotransform puts its centre {gap_m / 1000:.0f} km from where its RPCs do; "
                     "the RPCs win and the geotransform is ignored")
    epsg = _utm_epsg(lon, lat)
    res = {}
    if profile is not None and profile.gsd:
        res = {"xRes": profile.gsd, "yRes": profile.gsd, "targetAlignedPixels": True}
    warped = gdal.Warp("", ds, format="VRT", dstSRS=f"EPSG:{epsg}", rpc=True, transformerOptions=t_opts,
                       resampleAlg="near", dstAlpha=True, errorThreshold=0, **res)
    wgt = warped.GetGeoTransform()
    west, south, east, north = footprint_bounds(tr, ds.RasterXSize, ds.RasterYSize)
    facts = {"product": "RPC-only image (orthorectified on the fly)", "geometry": "RPC", "terrain": terrain,
             "utm_zone_epsg": epsg, "pixel_size_m": round(wgt[1], 4),
             "pixel_size_from": "the sensor profile" if res else "GDAL's suggestion for the RPC warp",
             "centre_lon_lat": [round(lon, 7), round(lat, 7)],
             "bounds_lon_lat": [round(v, 7) for v in (west, south, east, north)],
             "rpc_source": next((f for f in ds.GetFileList()[1:] if re.search(r"(rpb|rpc\.txt)$", f, re.I)),
                                "RPC tags in the file"),
             "warped_size": [warped.RasterXSize, warped.RasterYSize]}
    if profile is not None:
        facts["sensor_from"] = reason
    why = (f"an image placed by RPCs only ({facts['rpc_source']}): orthorectified on the fly to EPSG:{epsg} "
           f"at {wgt[1]:.4g} m with {terrain}")
    return Product(kind="RPC image", path=path, dataset=warped, profile=profile, reason=why,
                   facts=facts, notes=notes, alpha=True, sensor_reason=reason)


def footprint_bounds(tr: gdal.Transformer, width: int, height: int, steps: int = 20):
    """(west, south, east, north) of the image's outline through the transformer, its edges sampled as
    gdalwarp does when it chooses an output extent."""
    pts = [(width * i / steps, 0.0) for i in range(steps + 1)] + [(width * i / steps, float(height))
                                                                  for i in range(steps + 1)]
    pts += [(0.0, height * j / steps) for j in range(steps + 1)] + [(float(width), height * j / steps)
                                                                    for j in range(steps + 1)]
    out = [tr.TransformPoint(0, x, y, 0)[1] for x, y in pts]
    lons, lats = [p[0] for p in out], [p[1] for p in out]
    return min(lons), min(lats), max(lons), max(lats)


def _gap(ds: gdal.Dataset, gt, lon: float, lat: float) -> tuple[float, float]:
    """(metres between the geotransform's centre and the RPC centre, the geotransform's pixel in metres)."""
    ref = osr.SpatialReference()
    ref.ImportFromWkt(ds.GetProjection())
    ref.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    wgs = osr.SpatialReference()
    wgs.ImportFromEPSG(4326)
    wgs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    ct = osr.CoordinateTransformation(ref, wgs)
    cx, cy = ds.RasterXSize / 2, ds.RasterYSize / 2
    x, y = gt[0] + gt[1] * cx + gt[2] * cy, gt[3] + gt[4] * cx + gt[5] * cy
    glon, glat, _ = ct.TransformPoint(x, y)
    x1, y1 = x + gt[1], y + gt[4]
    plon, plat, _ = ct.TransformPoint(x1, y1)
    return _metres(glon, glat, lon, lat), max(_metres(glon, glat, plon, plat), 1e-3)


def _metres(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance (haversine, mean Earth radius) — enough to tell a pixel from a continent."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371008.8 * math.asin(min(1.0, math.sqrt(a)))
