"""Sentinel-2 L1C/L2A products through GDAL's SENTINEL2 driver: the .SAFE folder, its .zip (/vsizip/), the
MTD_MSIL1C.xml/MTD_MSIL2A.xml inside, or a SENTINEL2_L1C:/SENTINEL2_L2A: subdataset name.

The 10 m subdataset in the product's own UTM zone (the tile's, T34UCF -> 34) is read; NIR, R, G, B are
its bands named B8, B4, B3, B2 (never their position: GDAL >= 3.9 appends AOT and WVP). Reflectance is
(DN + offset) / quantification; the offset comes from GDAL's band metadata when it has one (BOA_ADD_OFFSET /
RADIO_ADD_OFFSET, GDAL >= 3.8) and otherwise from the XML's BOA_ADD_OFFSET / RADIO_ADD_OFFSET elements
(Debian 12's GDAL 3.6 does not expose them); a baseline >= 04.00 product without either gets -1000, the
value ESA documents. DN 0 (no data) and the saturated value are invalid.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

from osgeo import gdal

from ...errors import FbpError
from ..sensors import PROFILES
from . import Product
from .masks import l1c_masks, scl_mask

gdal.UseExceptions()

_NAME_RE = re.compile(r"S2[ABCD]?_MSIL(1C|2A)_(\d{8}T\d{6})_N(\d{4})_R(\d{3})_T(\d{2})([A-Z]{3})")
_SUBDATASET_RE = re.compile(r"^SENTINEL2_L(1C|2A):(.+\.xml):(10m|20m|60m|TCI):EPSG_(\d+)$", re.IGNORECASE)
# band_id of the XML's offset lists -> the band names GDAL gives
BAND_IDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
MODEL_BANDS = ("B8", "B4", "B3", "B2")  # NIR, R, G, B
ESA_OFFSET = -1000.0  # processing baseline >= 04.00 (25 January 2022)


def _metadata_xml(path: str) -> str | None:
    """The GDAL name of the product's MTD_MSIL*.xml for a .SAFE folder, .SAFE.zip or the XML itself."""
    p = Path(path)
    name = p.name.upper()
    if p.is_dir() and name.endswith(".SAFE"):
        found = sorted(p.glob("MTD_MSIL*.xml"))
        return str(found[0]) if found else None
    if p.is_file() and re.fullmatch(r"MTD_MSIL(1C|2A)\.XML", name):
        return str(p)
    if p.is_file() and name.endswith(".ZIP") and _NAME_RE.search(name):
        root = f"/vsizip/{p}"
        for entry in gdal.ReadDirRecursive(root) or []:
            if re.fullmatch(r"[^/]+\.SAFE/MTD_MSIL(1C|2A)\.xml", entry, re.IGNORECASE):
                return f"{root}/{entry}"
    return None


def recognise(path: str) -> Product | None:
    """A Sentinel-2 product at ``path`` (see the module docstring), or None when it is not one."""
    m = _SUBDATASET_RE.match(path)
    if m:
        xml, wanted_epsg = m.group(2), int(m.group(4))
        if m.group(3).lower() != "10m":
            raise FbpError(f"{path} is the {m.group(3)} subdataset of a Sentinel-2 product; the model reads "
                           "B8, B4, B3, B2 at 10 m: give the product itself or its 10m subdataset.")
    else:
        xml = _metadata_xml(path)
        wanted_epsg = None
    if xml is None:
        return None
    try:
        root = gdal.Open(xml)
    except RuntimeError as exc:
        raise FbpError(f"{path} looks like a Sentinel-2 product but GDAL's SENTINEL2 driver cannot open "
                       f"its metadata {xml} ({str(exc).strip()}); check that the product is complete.") \
            from None
    md = root.GetMetadata() or {}
    level = "L2A" if "MSIL2A" in xml.upper() else "L1C"
    subs = {v: v for k, v in (root.GetMetadata("SUBDATASETS") or {}).items() if k.endswith("_NAME")}
    tens = [s for s in subs if ":10m:" in s]
    if not tens:
        raise FbpError(f"{path} is a Sentinel-2 {level} product without a 10 m subdataset in GDAL; "
                       "check that its GRANULE/*/IMG_DATA band files are present.")
    name_m = _NAME_RE.search(Path(path).name.upper()) or _NAME_RE.search(xml.upper())
    tile = f"T{name_m.group(5)}{name_m.group(6)}" if name_m else None
    zones = {int(s.rsplit("EPSG_", 1)[1]): s for s in tens}
    notes = []
    if wanted_epsg is not None:
        if wanted_epsg not in zones:
            raise FbpError(f"{path}: the product has no 10 m subdataset in EPSG:{wanted_epsg}; it has "
                           f"{', '.join(f'EPSG:{z}' for z in sorted(zones))}.")
        epsg = wanted_epsg
    else:
        own = [z for z in zones if tile and z % 100 == int(tile[1:3])]
        epsg = own[0] if own else sorted(zones)[0]
        if len(zones) > 1:
            others = ", ".join(zones[z] for z in sorted(zones) if z != epsg)
            which = f"the tile {tile}'s zone" if own else "the first"
            notes.append(f"the product covers {len(zones)} UTM zones; the part in EPSG:{epsg} ({which}) is "
                         f"mapped, the rest is not: map it by giving its subdataset ({others})")
    sub = zones[epsg]
    ds = gdal.Open(sub)
    names = [_band_name(ds, i + 1) for i in range(ds.RasterCount)]
    missing = [b for b in MODEL_BANDS if b not in names]
    if missing:
        raise FbpError(f"{sub} lacks the band(s) {', '.join(missing)} (it has {', '.join(names)}); the model "
                       "needs B8, B4, B3 and B2.")
    order = tuple(names.index(b) + 1 for b in MODEL_BANDS)
    baseline = md.get("PROCESSING_BASELINE", "")
    quant_key = "BOA_QUANTIFICATION_VALUE" if level == "L2A" else "QUANTIFICATION_VALUE"
    quant = float(md.get(quant_key) or 10000.0)
    offset, offset_how = _offset(ds, order, xml, level, baseline)
    invalid = [float(md.get("SPECIAL_VALUE_NODATA", 0) or 0)]
    saturated = md.get("SPECIAL_VALUE_SATURATED")
    if saturated is not None and float(saturated) >= quant:
        invalid.append(float(saturated))
    elif saturated is not None:
        notes.append(f"the metadata's SATURATED special value {saturated} is below the quantification value "
                     f"{quant:g} and is not a DN (a known quirk of early L2A metadata): not used")
    profile = replace(PROFILES["sentinel2"], band_order={0: order}, offset=-offset, scale=quant,
                      offset_from_metadata=False,
                      title=f"Sentinel-2 {level} product (B8,B4,B3,B2 by name; 10 m)")
    masks, mask_note = (scl_mask(root, xml, epsg) if level == "L2A" else l1c_masks(xml))
    date = (md.get("PRODUCT_START_TIME") or md.get("DATATAKE_1_DATATAKE_SENSING_START") or "")[:19]
    facts = {
        "product": f"Sentinel-2 {level}", "product_type": md.get("PRODUCT_TYPE"),
        "spacecraft": md.get("DATATAKE_1_SPACECRAFT_NAME"), "processing_baseline": baseline,
        "date": date, "tile": tile, "utm_zone_epsg": epsg, "subdataset": sub,
        "bands_used": {"NIR": "B8", "R": "B4", "G": "B3", "B": "B2"}, "band_numbers": list(order),
        "offset": offset, "offset_source": offset_how, "quantification": quant,
        "invalid_dn": invalid, "geometry": "geotransform (the product's UTM grid)",
        "granules": "one subdataset per UTM zone: GDAL's SENTINEL2 driver mosaics the zone's granules",
    }
    reason = (f"a Sentinel-2 {level} product (baseline {baseline}, tile {tile}, {date[:10]}): 10 m "
              f"subdataset EPSG:{epsg}, NIR,R,G,B = B8,B4,B3,B2 (bands {','.join(map(str, order))})")
    bad = ", ".join(f"{v:g}" for v in invalid)
    scaling = f"reflectance = (DN {offset:+g}) / {quant:g}: offset from {offset_how}; DN {bad} invalid"
    return Product(kind=f"Sentinel-2 {level}", path=path, dataset=sub, profile=profile, reason=reason,
                   scaling=scaling, invalid_values=tuple(invalid), masks=masks, mask_note=mask_note,
                   facts=facts, notes=notes)


def _band_name(ds: gdal.Dataset, band: int) -> str:
    """"B4" from the description "B4, central wavelength 665 nm"."""
    return ds.GetRasterBand(band).GetDescription().split(",")[0].strip().upper()


def _offset(ds: gdal.Dataset, order: tuple[int, ...], xml: str, level: str,
            baseline: str) -> tuple[float, str]:
    """The additive DN offset of the four bands and where it came from (one value: they must agree)."""
    key = "BOA_ADD_OFFSET" if level == "L2A" else "RADIO_ADD_OFFSET"
    from_gdal = [ds.GetRasterBand(b).GetMetadataItem(key) for b in order]
    if all(v is not None for v in from_gdal):
        values, how = [float(v) for v in from_gdal], f"GDAL's per-band {key}"
    else:
        per_id = _xml_offsets(xml, key)
        names = [_band_name(ds, b) for b in order]
        values = [per_id.get(BAND_IDS.index(n)) for n in names]
        how = f"the XML's {key} list (GDAL does not expose it)"
        if any(v is None for v in values):
            try:
                major = float(baseline)
            except ValueError:
                major = 0.0
            if major >= 4.0:
                return ESA_OFFSET, (f"baseline {baseline} >= 04.00 without an offset list: "
                                    f"ESA's {ESA_OFFSET:g}")
            return 0.0, f"baseline {baseline} < 04.00: none"
    if len(set(values)) != 1:
        raise FbpError(f"{xml}: the bands B8, B4, B3, B2 have different offsets {values}; this is not "
                       "supported, stack the bands yourself with their offsets applied.")
    return values[0], how


def _xml_offsets(xml: str, key: str) -> dict[int, float]:
    f = gdal.VSIFOpenL(xml, "rb")
    if f is None:
        return {}
    try:
        size = gdal.VSIStatL(xml).size
        text = gdal.VSIFReadL(1, size, f)
    finally:
        gdal.VSIFCloseL(f)
    out = {}
    for el in ET.fromstring(text).iter():
        if el.tag.rsplit("}", 1)[-1] == key and el.get("band_id") is not None:
            out[int(el.get("band_id"))] = float(el.text)
    return out


def is_product_path(path: str | os.PathLike) -> bool:
    """True when ``path`` names a Sentinel-2 product form this module reads (no GDAL opening)."""
    p = os.fspath(path)
    return bool(_SUBDATASET_RE.match(p)) or _metadata_xml(p) is not None
