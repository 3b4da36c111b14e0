"""Generated landscapes with a cross-sensor domain shift, for the demo, the tests and the adaptation
benchmark.

Deterministic for a seed and fast (numpy only). ``make_labels`` draws a label map, ``spectra`` turns it
into surface reflectance, a sensor model (``SOURCE``, ``TARGET``, ``NO_SHIFT``, ...) into stored DN,
and the writers put scenes on disk in the official Five-Billion-Pixels layout or as georeferenced
target scenes with held-back truth.
"""

from .instruments import (
    NO_SHIFT,
    PLANETSCOPE,
    SENSORS,
    SENTINEL2,
    SOURCE,
    TARGET,
    SyntheticSensor,
    get_sensor,
)
from .landscape import MIXES, ClassMix, get_mix, make_labels
from .shift import measure_shift
from .spectra import SPECTRA, reflectance
from .writers import DomainShiftData, domain_shift_dataset, scene, write_source_dataset, write_target_scene

__all__ = [
    "NO_SHIFT", "PLANETSCOPE", "SENSORS", "SENTINEL2", "SOURCE", "TARGET", "SyntheticSensor", "get_sensor",
    "MIXES", "ClassMix", "get_mix", "make_labels", "measure_shift", "SPECTRA", "reflectance",
    "DomainShiftData", "domain_shift_dataset", "scene", "write_source_dataset", "write_target_scene",
]
