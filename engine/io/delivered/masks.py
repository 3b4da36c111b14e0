"""Quality masks found in or beside a product, each a band and a named rule (True = masked).

- Sentinel-2 L2A: the scene classification (SCL, 20 m, band "SCL" of the 20m subdataset). ``SCL_RULES``
  names the class sets; the default masks no data, saturated/defective, cloud shadow, cloud medium and
  high probability and thin cirrus (classes 0, 1, 3, 8, 9, 10).
- Sentinel-2 L1C: QI_DATA/MSK_CLASSI_B00 (60 m; band 1 opaque clouds, band 2 cirrus: non-zero masked), else
  MSK_CLDPRB_20m (cloud probability >= 50 %), else none.
- PlanetScope: the UDM2 (band 1 clear: 0 masked; band 8, the legacy UDM bits: blackfill, cloud, missing or
  suspect band data — any bit masked), or a legacy UDM (any bit masked).
- A user's raster: non-zero masked.
"""

from __future__ import annotations

import re

import numpy as np
from osgeo import gdal

from . import MaskSource

gdal.UseExceptions()

SCL_CLASSES = ("NODATA", "SATURATED_DEFECTIVE", "DARK_FEATURE_SHADOW", "CLOUD_SHADOW", "VEGETATION",
               "NOT_VEGETATED", "WATER", "UNCLASSIFIED", "CLOUD_MEDIUM_PROBA", "CLOUD_HIGH_PROBA",
               "THIN_CIRRUS", "SNOW_ICE")
SCL_RULES: dict[str, tuple[int, ...]] = {
    "default": (0, 1, 3, 8, 9, 10),
    "strict": (0, 1, 2, 3, 7, 8, 9, 10),  # also dark features and unclassified
    "clouds": (8, 9, 10),
}
CLDPRB_THRESHOLD = 50  # per cent


def class_rule(classes: tuple[int, ...]):
    lut = np.zeros(256, dtype=bool)
    lut[list(classes)] = True
    return lambda a: lut[np.clip(a, 0, 255).astype(np.uint8)]


def nonzero(a: np.ndarray) -> np.ndarray:
    return a != 0


def zero(a: np.ndarray) -> np.ndarray:
    return a == 0


def at_least(threshold: float):
    return lambda a: a >= threshold


def user_mask(path: str) -> MaskSource:
    return MaskSource(name=f"user mask {path}", dataset=path, band=1, rule=nonzero, rule_text="non-zero")


def scl_mask(root: gdal.Dataset, xml: str, epsg: int, rule: str = "default") -> tuple[list[MaskSource], str]:
    """The L2A product's SCL band as a mask (its 20m subdataset in the 10 m subdataset's zone ``epsg``)."""
    subs = [v for k, v in (root.GetMetadata("SUBDATASETS") or {}).items()
            if k.endswith("_NAME") and v.endswith(f":20m:EPSG_{epsg}")]
    for sub in subs:
        ds = gdal.Open(sub)
        for i in range(ds.RasterCount):
            if ds.GetRasterBand(i + 1).GetDescription().split(",")[0].strip().upper() == "SCL":
                classes = SCL_RULES[rule]
                text = f"SCL rule '{rule}': " + ", ".join(SCL_CLASSES[c] for c in classes)
                return ([MaskSource(name="Sentinel-2 scene classification (SCL, 20 m, nearest)", dataset=sub,
                                    band=i + 1, rule=class_rule(classes), rule_text=text)],
                        f"SCL found (band {i + 1} of the 20m subdataset)")
    return [], "no SCL band in the product's 20m subdataset: no product mask"


def _qi_files(xml: str, pattern: str) -> list[str]:
    base = xml.rsplit("/", 1)[0]
    granules = gdal.ReadDir(f"{base}/GRANULE") or []
    found = []
    for g in sorted(granules):
        for f in sorted(gdal.ReadDir(f"{base}/GRANULE/{g}/QI_DATA") or []):
            if re.fullmatch(pattern, f, re.IGNORECASE):
                found.append(f"{base}/GRANULE/{g}/QI_DATA/{f}")
    return found


def l1c_masks(xml: str) -> tuple[list[MaskSource], str]:
    """MSK_CLASSI_B00 (opaque clouds, cirrus), else MSK_CLDPRB_20m, else none (older L1C: GML masks)."""
    classi = _qi_files(xml, r"MSK_CLASSI_B00\.jp2")
    if classi:
        srcs = [MaskSource(name=f"Sentinel-2 {what} (MSK_CLASSI_B00, 60 m, nearest)", dataset=classi[0],
                           band=b, rule=nonzero, rule_text="non-zero")
                for b, what in ((1, "opaque clouds"), (2, "cirrus"))]
        note = "MSK_CLASSI_B00 found"
        if len(classi) > 1:
            note += f" (of {len(classi)} granules the first is used)"
        return srcs, note
    prb = _qi_files(xml, r"MSK_CLDPRB_20m\.jp2")
    if prb:
        return ([MaskSource(name="Sentinel-2 cloud probability (MSK_CLDPRB_20m, nearest)", dataset=prb[0],
                            band=1, rule=at_least(CLDPRB_THRESHOLD), rule_text=f">= {CLDPRB_THRESHOLD} %")],
                "MSK_CLDPRB_20m found")
    return [], ("no MSK_CLASSI_B00 or MSK_CLDPRB raster mask in the L1C product (baselines before 04.00 "
                "ship GML cloud masks, which are not read): no product mask")


def udm2_masks(path: str) -> list[MaskSource]:
    """A PlanetScope UDM2: clear band 1 (0 = not clear) and band 8's legacy unusable-data bits."""
    return [
        MaskSource(name=f"PlanetScope UDM2 clear band ({path})", dataset=path, band=1, rule=zero,
                   rule_text="clear == 0 (snow, shadow, haze, cloud)"),
        MaskSource(name=f"PlanetScope UDM2 unusable bits, band 8 ({path})", dataset=path, band=8,
                   rule=nonzero, rule_text="any bit (blackfill, cloud, missing or suspect band data)"),
    ]


def udm1_mask(path: str) -> list[MaskSource]:
    return [MaskSource(name=f"PlanetScope legacy UDM ({path})", dataset=path, band=1, rule=nonzero,
                       rule_text="any bit (blackfill, cloud, missing or suspect band data)")]
