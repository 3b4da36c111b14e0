"""Engine sentences reworded for the panel: no command-line syntax, and the band-mapping example of the
raster at hand instead of a generic one."""

from __future__ import annotations

import re

_EXAMPLE = re.compile(r"nir=\d+,r=\d+,g=\d+,b=\d+(?:\[?,[a-z_]+=[^,\]\s.;)]+\]?)*")


def for_panel(text: str, example: str | None = None) -> str:
    """``text`` without "--sensor …" and "custom:" syntax; band-mapping examples replaced by ``example``."""
    text = text.replace(" (the Sensor box in QGIS, --sensor on the command line)", " (the Sensor box)")
    text = re.sub(r"give the bands explicitly, e\.g\. --sensor custom:",
                  "choose 'Custom band mapping', e.g. ", text)
    text = re.sub(r"(?:--sensor )?custom:(?=nir=)", "'Custom band mapping' ", text)
    text = re.sub(r"--sensor\b", "the Sensor box", text)
    return _EXAMPLE.sub(example, text) if example else text
