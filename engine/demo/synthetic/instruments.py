"""Sensor models for the generated scenes: how surface reflectance becomes a sensor's stored DN.

Each model mixes bands (different spectral responses), applies a non-linear response (gamma), per-band
gains and offsets, blur and noise, and stores the bands in the sensor's own order and data type.
Per-scene mean/std normalisation removes per-band affine shifts only; band mixing, gamma, the target
region's spectra and its texture are what a source-trained model has to adapt to.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ...training.augment import gaussian_blur

_ROLE = {"NIR": 0, "R": 1, "G": 2, "B": 3}
_IDENTITY = ((1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 0.0, 0.0), (0.0, 0.0, 1.0, 0.0), (0.0, 0.0, 0.0, 1.0))


@dataclass(frozen=True)
class SyntheticSensor:
    """A sensor model. Matrices and per-band values are in NIR, R, G, B order."""

    name: str
    profile: str  # the engine's sensor profile that reads what this model writes (engine/io/sensors.py)
    title: str
    gsd: float
    bands: tuple[str, ...]  # stored band order, e.g. ("B", "G", "R", "NIR")
    mixing: tuple[tuple[float, ...], ...] = _IDENTITY  # observed = mixing @ true reflectance
    gamma: float = 1.0  # observed = observed ** gamma (non-linear response)
    gain: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)  # DN per unit of observed value
    offset: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)  # DN added (path radiance, dark current, S2 offset)
    noise: float = 0.0  # noise standard deviation, in reflectance units
    blur: float = 0.0  # Gaussian point-spread sigma in pixels
    dn_max: int = 65535
    scale: float = 1.0  # DN / scale -> 0..1 for reading back (the engine profile's scale)
    region: str = "source"  # "source" | "target": the landscape's own spectra (demo.synthetic.spectra)

    def observe(self, rng: np.random.Generator, refl: np.ndarray) -> np.ndarray:
        """uint16 DN (bands in stored order, rows, cols) from reflectance (4, rows, cols) NIR,R,G,B."""
        m = np.asarray(self.mixing, np.float32)
        x = np.tensordot(m, refl, axes=1)
        if self.gamma != 1.0:
            x = np.clip(x, 0, None) ** self.gamma
        x = gaussian_blur(x, self.blur)
        if self.noise:
            x = x + rng.normal(0.0, self.noise, x.shape).astype(np.float32)
        dn = x * np.asarray(self.gain, np.float32)[:, None, None] + np.asarray(self.offset, np.float32)[:,
                                                                                                        None,
                                                                                                        None]
        dn = np.clip(np.rint(dn), 0, self.dn_max).astype(np.uint16)
        return dn[[_ROLE[b] for b in self.bands]]

    def to_nirrgb(self, stored: np.ndarray) -> np.ndarray:
        """float32 NIR,R,G,B 0..1 values from stored DN, as the engine's profile reads them."""
        nirrgb = stored[[self.bands.index(r) for r in ("NIR", "R", "G", "B")]].astype(np.float32)
        base = 1000.0 if self.profile == "sentinel2" else 0.0
        return np.clip((nirrgb - base) / self.scale, 0.0, 1.0)


SOURCE = SyntheticSensor(
    name="gaofen2", profile="gaofen2", title="Gaofen-2 PMS-like (B,G,R,NIR uint16 10-bit DN, 4 m)", gsd=4.0,
    bands=("B", "G", "R", "NIR"), gain=(900.0, 1050.0, 1100.0, 1150.0), offset=(20.0, 35.0, 45.0, 60.0),
    noise=0.004, dn_max=1023, scale=1023.0, region="source",
)

# PlanetScope-like: broader, overlapping bands (red takes some NIR and green; green some blue and red),
# a compressive response, surface reflectance x 10000, more noise, a softer point spread, 3 m.
PLANETSCOPE = SyntheticSensor(
    name="planetscope", profile="planetscope",
    title="PlanetScope-like (B,G,R,NIR uint16 reflectance x10000, 3 m)", gsd=3.0, bands=("B", "G", "R",
                                                                                         "NIR"),
    mixing=((0.85, 0.15, 0.0, 0.0), (0.12, 0.68, 0.20, 0.0), (0.0, 0.15, 0.65, 0.20), (0.0, 0.0, 0.25, 0.75)),
    gamma=0.7, gain=(9000.0, 10500.0, 9800.0, 10200.0), offset=(-150.0, 80.0, 120.0, 250.0),
    noise=0.012, blur=1.0, dn_max=10000, scale=10000.0, region="target",
)

# Sentinel-2-like: L2A stack B02,B03,B04,B08 with the +1000 offset of processing baseline 04.00, 10 m.
SENTINEL2 = SyntheticSensor(
    name="sentinel2", profile="sentinel2",
    title="Sentinel-2-like (B02,B03,B04,B08 uint16 x10000 +1000, 10 m)",
    gsd=10.0, bands=("B", "G", "R", "NIR"),
    mixing=((0.93, 0.07, 0.0, 0.0), (0.05, 0.85, 0.10, 0.0), (0.0, 0.08, 0.80, 0.12), (0.0, 0.0, 0.15, 0.85)),
    gamma=0.85, gain=(9500.0, 10000.0, 10000.0, 10500.0), offset=(1000.0, 1080.0, 1100.0, 1200.0),
    noise=0.006, blur=0.6, dn_max=20000, scale=10000.0, region="target",
)

TARGET = PLANETSCOPE
NO_SHIFT = replace(SOURCE, name="no_shift", title="No shift: the source sensor and region (control)")

SENSORS: dict[str, SyntheticSensor] = {s.name: s for s in (SOURCE, PLANETSCOPE, SENTINEL2, NO_SHIFT)}


def get_sensor(sensor: str | SyntheticSensor) -> SyntheticSensor:
    if isinstance(sensor, SyntheticSensor):
        return sensor
    try:
        return SENSORS[sensor]
    except KeyError:
        raise ValueError(f"unknown synthetic sensor {sensor!r}; expected one of {sorted(SENSORS)}") from None
