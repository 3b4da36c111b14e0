"""Surface reflectance of the generated landscapes: per-class spectra with within-class texture.

Reflectance is in NIR, R, G, B order, 0..1. Each class has a mean spectrum, a "partner" spectrum it is
mixed with per object (crops at different growth stages mix with soil, towns with trees), a
low-frequency variation and pixel noise, so classes overlap partly. A *region* changes the spectra
themselves (the target region's vegetation is greener, its water more turbid, its roofs bluer).
"""

from __future__ import annotations

import numpy as np

from .noise import blocky_noise, smooth_noise

# NIR, R, G, B reflectance per FBP index (0 = unlabelled clutter: ballast, dykes, building sites).
SPECTRA = np.array([
    (0.22, 0.17, 0.15, 0.13),  # 0 unlabelled clutter
    (0.27, 0.25, 0.25, 0.26),  # 1 industrial area
    (0.30, 0.06, 0.09, 0.07),  # 2 paddy field
    (0.44, 0.06, 0.10, 0.06),  # 3 irrigated field
    (0.31, 0.14, 0.13, 0.10),  # 4 dry cropland
    (0.37, 0.07, 0.09, 0.06),  # 5 garden land
    (0.33, 0.04, 0.06, 0.04),  # 6 arbor forest
    (0.28, 0.07, 0.08, 0.05),  # 7 shrub forest
    (0.34, 0.08, 0.10, 0.07),  # 8 park
    (0.33, 0.11, 0.11, 0.08),  # 9 natural meadow
    (0.41, 0.07, 0.11, 0.06),  # 10 artificial meadow
    (0.05, 0.07, 0.09, 0.09),  # 11 river (a little silt)
    (0.20, 0.17, 0.16, 0.16),  # 12 urban residential
    (0.03, 0.04, 0.07, 0.08),  # 13 lake
    (0.05, 0.05, 0.09, 0.08),  # 14 pond
    (0.07, 0.06, 0.10, 0.08),  # 15 fish pond (algae)
    (0.72, 0.84, 0.86, 0.87),  # 16 snow
    (0.33, 0.29, 0.25, 0.20),  # 17 bareland
    (0.22, 0.19, 0.17, 0.15),  # 18 rural residential
    (0.28, 0.22, 0.18, 0.17),  # 19 stadium
    (0.26, 0.25, 0.24, 0.23),  # 20 square
    (0.17, 0.16, 0.16, 0.16),  # 21 road
    (0.24, 0.23, 0.22, 0.22),  # 22 overpass
    (0.25, 0.21, 0.20, 0.21),  # 23 railway station
    (0.27, 0.25, 0.24, 0.23),  # 24 airport
], dtype=np.float32)

_SOIL, _TREE, _ROOF = SPECTRA[17], SPECTRA[6], SPECTRA[1]
_VEGETATION = [2, 3, 4, 5, 6, 7, 8, 9, 10]
_WATER = [11, 13, 14, 15]
_BUILT = [1, 12, 18, 19, 20, 21, 22, 23, 24]

# Per class: partner spectrum, per-object mixing fraction range, low-frequency and pixel noise (relative).
_PARTNER = np.stack([SPECTRA[c] for c in range(25)])
_MIX = np.zeros((25, 2), np.float32)
for _c, _p, _lo, _hi in [
    (2, _SOIL, 0.0, 0.35), (3, _SOIL, 0.0, 0.45), (4, _SOIL, 0.0, 0.5), (5, _SOIL, 0.05, 0.35),
    (7, _SOIL, 0.1, 0.4), (9, _SOIL, 0.1, 0.45), (10, _SOIL, 0.0, 0.2),
    (12, _TREE, 0.0, 0.35), (18, _TREE, 0.05, 0.4), (1, SPECTRA[12], 0.0, 0.5), (19, _TREE, 0.2, 0.5),
    (8, _TREE, 0.2, 0.5), (17, SPECTRA[9], 0.0, 0.3), (15, SPECTRA[3], 0.0, 0.25), (14, SPECTRA[11], 0.0,
                                                                                    0.5),
]:
    _PARTNER[_c], _MIX[_c] = _p, (_lo, _hi)
_LOWFREQ = np.full(25, 0.08, np.float32)
_LOWFREQ[_WATER] = 0.15
_LOWFREQ[_BUILT] = 0.12
_PIXEL = np.full(25, 0.05, np.float32)
_PIXEL[_BUILT] = 0.12  # roofs, shadows
_PIXEL[[6, 7]] = 0.09  # canopy texture
_PIXEL[_WATER] = 0.03


def region_spectra(region: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(class spectra, partner spectra, texture scale) for a region: ``source`` or ``target``."""
    spectra, partner = SPECTRA.copy(), _PARTNER.copy()
    if region == "source":
        return spectra, partner, 1.0
    if region != "target":
        raise ValueError(f"unknown region {region!r}; expected 'source' or 'target'")
    for arr in (spectra, partner):
        arr[_VEGETATION, 0] *= 1.3  # greener, denser vegetation: brighter NIR,
        arr[_VEGETATION, 1] *= 0.6  # darker red, brighter green
        arr[_VEGETATION, 2] *= 1.2
        arr[_WATER, 1:3] += (0.06, 0.05)  # more turbid water
        arr[_WATER, 0] += 0.03
        arr[_BUILT, 3] += 0.05  # bluer, brighter roofs and asphalt
        arr[_BUILT, 2] += 0.02
        arr[_BUILT, 0] -= 0.03
        arr[17] = (0.36, 0.35, 0.27, 0.17)  # redder soil
        arr[4] = 0.6 * arr[4] + 0.4 * arr[17]
    return spectra, partner, 1.6


def reflectance(rng: np.random.Generator, labels: np.ndarray, gsd: float = 4.0,
                region: str = "source") -> np.ndarray:
    """Surface reflectance (float32, 4 x rows x cols, NIR,R,G,B) of a label map."""
    spectra, partner, texture = region_spectra(region)
    shape = labels.shape
    parcel = blocky_noise(rng, shape, 120.0 / gsd)  # objects ~120 m
    frac = np.clip(0.5 + 0.3 * parcel, 0, 1)
    lo, hi = _MIX[labels, 0], _MIX[labels, 1]
    frac = lo + (hi - lo) * frac
    low = smooth_noise(rng, shape, 60.0 / gsd)
    out = np.empty((4,) + shape, np.float32)
    common = rng.standard_normal(shape, dtype=np.float32)
    lowamp = _LOWFREQ[labels] * texture
    pixamp = _PIXEL[labels] * texture
    for b in range(4):
        base = spectra[labels, b] * (1 - frac) + partner[labels, b] * frac
        noise = 0.7 * common + 0.7 * rng.standard_normal(shape, dtype=np.float32)
        out[b] = base * (1 + lowamp * low + pixamp * noise)
    return np.clip(out, 0.0, 1.0, out=out)
