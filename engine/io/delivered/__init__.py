"""Sensor products as providers deliver them: a Sentinel-2 .SAFE (folder, zip or MTD XML), a PlanetScope
scene with its UDM2, an image placed only by RPCs (Gaofen-1/2 L1A). ``recognise`` turns a path into a
``Product``: which GDAL dataset holds the pixels, which of its bands are NIR, R, G, B (by name where the
product names them), how DN become reflectance, the quality masks found beside or inside it, and the facts
``fbp-landcover info`` prints. ``raster.ModelInput`` reads through it; nothing here reads pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..sensors import SensorProfile

MASK_AUTO, MASK_NONE = "auto", "none"


@dataclass(frozen=True)
class MaskSource:
    """One band of a quality raster and the rule that says which of its values are masked.

    ``dataset`` is a GDAL name on its own georeferenced grid (resampled to the working grid by nearest);
    ``rule`` maps that band's values to True where masked."""

    name: str  # what the summary calls it: "Sentinel-2 SCL (rule default: ...)"
    dataset: str
    band: int
    rule: Callable[[np.ndarray], np.ndarray]
    rule_text: str = "non-zero"


@dataclass
class Product:
    """What a delivered product is and how to read it (see the module docstring)."""

    kind: str  # "Sentinel-2 L2A", "PlanetScope AnalyticMS_SR", "RPC-only image", ...
    path: str  # what the user gave
    dataset: str | object  # the GDAL name (or an open gdal.Dataset, for a warped VRT) holding the pixels
    profile: SensorProfile | None  # band_order maps the dataset's bands to NIR, R, G, B; None: detect
    reason: str  # why it was recognised, for the sensor line
    scaling: str = ""  # how DN become 0..1, in words (offset, quantification)
    invalid_values: tuple[float, ...] = ()  # DN that are not data (Sentinel-2: 0 no data, 65535 saturated)
    band_gains: tuple[float, float, float, float] | None = None  # per-band factor after scaling (TOA coeffs)
    masks: list[MaskSource] = field(default_factory=list)
    mask_note: str = "the product has no quality mask of its own"  # what was looked for and found (or not)
    facts: dict = field(default_factory=dict)  # level, baseline, date, tile, zone, bands, offsets, geometry
    notes: list[str] = field(default_factory=list)
    alpha: bool = False  # the dataset's last band is an alpha band (a warped VRT): 0 = outside the image
    sensor_reason: str | None = None  # why ``profile`` was chosen, when it was not by the product's kind

    def in_words(self) -> str:
        """What ``info`` reports, as the panel's sensor line says it: scaling, mask, geometry."""
        parts = [self.scaling, f"mask: {self.mask_note}", self.facts.get("geometry", "")]
        return "; ".join(p for p in parts if p)


def recognise(path: str | os.PathLike, *, rpc_height: float | None = None,
              rpc_dem: str | None = None) -> Product | None:
    """The product at ``path``, or None for a plain raster (read as it is)."""
    from . import planetscope, rpc, sentinel2

    path = os.fspath(path)
    product = sentinel2.recognise(path)
    if product is None:
        product = planetscope.recognise(path)
    if product is None:
        product = rpc.recognise(path, height=rpc_height, dem=rpc_dem)
    return product
