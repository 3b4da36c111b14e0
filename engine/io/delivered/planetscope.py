"""PlanetScope scenes as Planet delivers them: ``<id>_3B_AnalyticMS_SR[_8b][_clip].tif`` (surface
reflectance x 10000) or ``<id>_3B_AnalyticMS[_8b][_clip].tif`` (TOA radiance DN, turned into TOA reflectance
with the ``reflectanceCoefficient`` of ``<id>_3B_AnalyticMS[_8b]_metadata[_clip].xml``), with the UDM2
(``<id>_3B_udm2[_clip].tif``) or the legacy UDM (``<id>_3B_AnalyticMS_DN_udm[_clip].tif``) found beside it.

NIR, R, G, B are found by the bands' names when the file names them (8-band: coastal_blue, blue, green_i,
green, yellow, red, rededge, nir), else by Planet's documented order (4-band B, G, R, NIR).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

from osgeo import gdal

from ...errors import FbpError
from ..sensors import PROFILES
from . import Product
from .masks import udm1_mask, udm2_masks

gdal.UseExceptions()

_SCENE_RE = re.compile(
    r"^(\d{8}_\d{6}(?:_\d{2})?_[0-9a-f]{4})_(3B|1B)_(AnalyticMS(?:_SR)?)(_8b)?(_clip)?\.tif$", re.IGNORECASE)
DOCUMENTED = {4: ("blue", "green", "red", "nir"),
              8: ("coastal_blue", "blue", "green_i", "green", "yellow", "red", "rededge", "nir")}
ROLES = ("nir", "red", "green", "blue")


def scene_id(path: str) -> str | None:
    m = _SCENE_RE.match(Path(path).name)
    return m.group(1) if m else None


def recognise(path: str) -> Product | None:
    m = _SCENE_RE.match(Path(path).name)
    if m is None or not Path(path).is_file():
        return None
    sid, level, kind, eight, _clip = m.groups()
    ds = gdal.Open(path)
    n = ds.RasterCount
    descs = [ds.GetRasterBand(i + 1).GetDescription().strip().lower() for i in range(n)]
    if all(r in descs for r in ROLES):
        names, how = descs, "the file's band names"
    elif n in DOCUMENTED:
        names, how = list(DOCUMENTED[n]), f"Planet's documented {n}-band order"
    else:
        raise FbpError(f"{path} is a PlanetScope {kind} scene with {n} bands; 4 or 8 were expected.")
    order = tuple(names.index(r) + 1 for r in ROLES)
    folder = Path(path).parent
    xml = _metadata_xml(folder, sid, kind)
    facts: dict = {"product": f"PlanetScope {level} {kind}", "scene_id": sid, "bands": n,
                   "bands_used": {"NIR": order[0], "R": order[1], "G": order[2], "B": order[3]},
                   "band_names_from": how, "metadata_xml": str(xml) if xml else None,
                   "geometry": "geotransform"}
    meta = _read_xml(xml) if xml else {}
    facts.update({k: meta[k] for k in ("date", "instrument", "platform") if k in meta})
    base = PROFILES["planetscope"]
    notes: list[str] = []
    gains = None
    if kind.upper().endswith("_SR"):
        profile = replace(base, band_order={0: order})
        scaling = "surface reflectance x 10000: DN / 10000"
    else:
        coefs = meta.get("reflectance_coefficients", {})
        if not all(b in coefs for b in order):
            raise FbpError(f"{path} is a PlanetScope TOA radiance product (AnalyticMS) but its metadata XML "
                           f"({xml or sid + '_3B_AnalyticMS_metadata.xml, not found beside it'}) gives no "
                           "reflectanceCoefficient for every band; put the XML beside the image or use the "
                           "_SR product.")
        gains = tuple(coefs[b] for b in order)
        profile = replace(base, band_order={0: order}, scale=1.0, reflectance=False)
        scaling = ("TOA reflectance = DN x reflectanceCoefficient of the metadata XML (NIR,R,G,B: "
                   + ", ".join(f"{g:.4g}" for g in gains) + ")")
    facts["scaling"] = scaling
    masks, note = [], "no UDM2 or UDM beside the image: no product mask"
    udm2 = sorted(folder.glob(f"{sid}_*udm2*.tif"))
    udm = sorted(p for p in folder.glob(f"{sid}_*udm*.tif") if "udm2" not in p.name.lower())
    if udm2:
        masks, note = udm2_masks(str(udm2[0])), f"UDM2 {udm2[0].name} found beside the image"
    elif udm:
        masks, note = udm1_mask(str(udm[0])), f"legacy UDM {udm[0].name} found beside the image"
    instrument = meta.get("instrument", "instrument unknown")
    reason = (f"a PlanetScope {kind} scene ({sid}, {instrument}): NIR,R,G,B = "
              f"bands {','.join(map(str, order))} by {how}")
    return Product(kind=f"PlanetScope {kind}", path=path, dataset=path, profile=profile, reason=reason,
                   scaling=scaling, band_gains=gains, masks=masks, mask_note=note, facts=facts, notes=notes)


def _metadata_xml(folder: Path, sid: str, kind: str) -> Path | None:
    found = sorted(folder.glob(f"{sid}_*AnalyticMS*metadata*.xml"))
    return found[0] if found else None


def _read_xml(path: Path) -> dict:
    """date, instrument, platform and {band number: reflectanceCoefficient} from a PlanetScope XML."""
    out: dict = {"reflectance_coefficients": {}}
    band = None
    for el in ET.parse(path).iter():
        tag = el.tag.rsplit("}", 1)[-1]
        text = (el.text or "").strip()
        if tag == "acquisitionDate" and "date" not in out:
            out["date"] = text[:19]
        elif tag == "shortName" and text:
            out["instrument" if "platform" in out else "platform"] = text
        elif tag == "bandNumber":
            band = int(text)
        elif tag == "reflectanceCoefficient" and band is not None:
            out["reflectance_coefficients"][band] = float(text)
    return out
