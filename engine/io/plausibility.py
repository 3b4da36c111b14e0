"""Plausibility of a raster under a sensor profile, checked before a run: warnings a user may override.

A wrong but plausible sensor (a uint8 aerial image mapped as Sentinel-2) runs without an error and gives
another map; these checks say so in one sentence each. They read a bounded sample (16 windows of 256 pixels),
never the whole raster, and never raise for the raster's content: a raster that cannot be opened or a sensor
that cannot be chosen is the run's own error to report.
"""

from __future__ import annotations

import numpy as np

from ..errors import FbpError
from .raster import _SAMPLE_WINDOW, _sample_windows, open_input
from .sensors import NIR_R_G_B, SensorProfile, choose

HIGH_VALUE = 1.5  # a 99th percentile above this after scaling: the scale is too small for these data
LOW_MEAN = 0.01  # a band mean below this after scaling: the scale is far too large (8-bit read as 16-bit)
HIGH_MEAN = 0.9  # a band mean above this after scaling: saturated, or the scale is far too small


def check(image, sensor: str | SensorProfile | None = "auto") -> list[str]:
    """Sentences saying why ``image``'s values look wrong for ``sensor`` (empty when they look right)."""
    try:
        profile = sensor if isinstance(sensor, SensorProfile) else choose(image, sensor)[0]
        inp = open_input(image, profile)
    except FbpError:
        return []  # the run itself reports this, with its own sentence
    with inp:
        warnings = _dtype_warnings(inp.dtype, profile)
        values = _scaled_sample(inp)
    if values.shape[1] == 0:
        return warnings
    high = np.percentile(values, 99, axis=1)
    means = values.mean(axis=1)
    name = profile.title
    reflectance_like = _reflectance_warning(inp, profile, values)
    if reflectance_like:
        return warnings + [reflectance_like]  # the band-mean sentences would only repeat it
    for role, p99, mean in zip(NIR_R_G_B, high, means, strict=True):
        if p99 > HIGH_VALUE:
            warnings.append(f"{role} values reach {p99:.2f} after the '{name}' scaling (reflectance-like "
                            f"values should stay below {HIGH_VALUE:g}): the data are probably not "
                            "this sensor's; choose another sensor or give the scale.")
        elif mean < LOW_MEAN or mean > HIGH_MEAN:
            warnings.append(f"The {role} band's mean is {mean:.3f} after the '{name}' scaling, far from "
                            f"the 0.02-0.6 a land surface gives: the data are probably not this sensor's; "
                            "choose another sensor or give the scale.")
    return warnings


def _reflectance_warning(inp, profile: SensorProfile, values: np.ndarray) -> str | None:
    """16-bit data under a profile of unknown bit depth (DN / 65535) whose values all stay within
    1100..10000 (above 10-bit DN): reflectance x 10000 (PlanetScope, Sentinel-2) or 12-bit DN, read far
    too dark."""
    if inp.dtype != "uint16" or profile.scale is not None or profile.reflectance or profile.bit_depth:
        return None
    top = float(values.max()) * inp.scale + inp.offset
    if inp.scale != 65535.0 or not 1100 <= top <= 10000:
        return None
    return (f"The values stay below 10000 (the largest seen is {top:.0f}), which the '{profile.title}' "
            f"sensor reads as 16-bit DN / 65535, at most {top / 65535:.2f}: far too dark. They look like "
            "surface reflectance x 10000 (choose the planetscope or sentinel2 sensor, or a custom band "
            "mapping with scale=10000) or 12-bit DN (scale=4095).")


def _dtype_warnings(dtype: str, profile: SensorProfile) -> list[str]:
    """8-bit data under a profile whose sensor delivers 10-bit DN or reflectance x 10000."""
    if dtype != "uint8" or profile.scale is not None:
        return []
    if profile.reflectance:
        expects = "16-bit reflectance x 10000"
    elif profile.bit_depth:
        expects = f"{profile.bit_depth}-bit values"
    else:
        return []
    return [f"The raster holds 8-bit values but the '{profile.title}' sensor delivers {expects}: "
            "it is probably another sensor's image (an 8-bit aerial or a rendered picture); "
            "choose the sensor that took it."]


def _scaled_sample(inp) -> np.ndarray:
    """(DN - offset) / scale of the NIR, R, G, B bands over a bounded sample, unclipped: float (4, n)."""
    chunks = []
    for x, y, w, h in _sample_windows(inp.width, inp.height, 16, _SAMPLE_WINDOW):
        raws, valid = inp._read_raw(x, y, w, h)
        if valid.any():
            chunks.append(np.stack([(raws[b][valid].astype(np.float64) - inp.offset) / inp.scale
                                    for b in inp.bands]))
    return np.concatenate(chunks, axis=1) if chunks else np.zeros((4, 0))
