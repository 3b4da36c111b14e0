"""Sensor profiles: which source bands are NIR, R, G, B, how digital numbers become 0..1 values, and the GSD.

A profile never reads pixels itself; ``raster.ModelInput`` applies it. ``detect`` picks a profile only in
unambiguous cases and says why; otherwise it raises ``FbpError`` listing the choices.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from osgeo import gdal

from ..errors import FbpError
from .gdal import open_dataset

gdal.UseExceptions()

NIR_R_G_B = ("NIR", "R", "G", "B")

# Sentinel-2 band names as they appear in file names (T33TVM_20220101T101010_B08_10m.jp2, ..._B8A.tif).
_S2_BAND_RE = re.compile(r"(?:^|[^A-Za-z0-9])B(0[1-9]|1[0-2]|8A)(?![0-9])", re.IGNORECASE)
S2_MODEL_BANDS = ("02", "03", "04", "08")  # B, G, R, NIR: stacked in this order from separate files


@dataclass(frozen=True)
class SensorProfile:
    """How a sensor's raster becomes the model's NIR, R, G, B input on 0..1 values.

    ``band_order`` maps a band count to the 1-based source bands of NIR, R, G, B; the key 0 means
    "any band count" (custom mappings). Values become ``(DN - offset) / scale`` clipped to [0, 1].
    """

    name: str
    title: str
    gsd: float | None
    band_order: dict[int, tuple[int, int, int, int]]
    offset: float = 0.0
    scale: float | None = None
    working_gsd: float | None = None
    bit_depth: int | None = None  # integer DN of this many bits (Gaofen 10-bit): uint16 scale = 2**bits - 1
    reflectance: bool = False  # integer data are reflectance x 10000 (PlanetScope SR, Sentinel-2)
    raw_gtiff: bool = False  # open GeoTIFFs through GDAL's GTIFF_RAW: (CMYK-tagged FBP 8-bit files)
    offset_from_metadata: bool = False  # Sentinel-2: offset from BOA/RADIO_ADD_OFFSET or baseline >= 04.00
    spec: str = field(default="", compare=False)  # the text it was made from ("custom:nir=4,...")

    def __hash__(self) -> int:  # band_order is a dict; hash the rest
        return hash((self.name, self.offset, self.scale, self.working_gsd, self.spec))

    @property
    def label(self) -> str:
        """The name a user types to get this profile back (``get_profile(p.label) == p``)."""
        return self.spec or self.name

    def bands_for(self, count: int, path: str = "the raster") -> tuple[int, int, int, int]:
        """The 1-based source bands of NIR, R, G, B for a raster with ``count`` bands, or FbpError."""
        if 0 in self.band_order:
            bands = self.band_order[0]
        elif count in self.band_order:
            bands = self.band_order[count]
        else:
            counts = " or ".join(str(c) for c in sorted(self.band_order))
            what = "too few bands" if count < min(self.band_order) else "a different band count"
            raise FbpError(
                f"{path} has {count} band(s), {what} for the '{self.name}' sensor profile, "
                f"which expects {counts}; choose another sensor or give the bands explicitly, e.g. "
                "--sensor custom:nir=4,r=3,g=2,b=1."
            )
        for role, b in zip(NIR_R_G_B, bands, strict=True):
            if not 1 <= b <= count:
                raise FbpError(
                    f"{path} has {count} band(s) "
                    f"but the '{self.label}' sensor profile takes {role} from band {b}; "
                    f"give band numbers between 1 and {count} (e.g. custom:nir=4,r=1,g=2,b=3)."
                )
        return bands

    def resolve_scale(
        self, dtype: str, max_value: float | None = None, path: str = "the raster"
    ) -> tuple[float, str]:
        """The divisor that turns (DN - offset) into 0..1 values, with a sentence saying why.

        ``dtype`` is a numpy dtype name; ``max_value`` the largest valid value seen in a sample (floats only).
        """
        if self.scale is not None:
            return float(self.scale), f"scale {self.scale:g} set by the '{self.label}' profile"
        if dtype == "uint8":
            return 255.0, "8-bit data: DN / 255"
        if dtype == "uint16":
            if self.reflectance:
                return 10000.0, "16-bit reflectance x 10000: DN / 10000"
            if self.bit_depth:
                top = float(2**self.bit_depth - 1)
                return top, f"{self.bit_depth}-bit DN stored as 16-bit: DN / {top:g}"
            return 65535.0, "16-bit data of unknown bit depth: DN / 65535 (custom scale= changes it)"
        if dtype == "int16":
            return 10000.0, "signed 16-bit data, taken as reflectance x 10000: DN / 10000"
        if dtype in ("float32", "float64"):
            if max_value is None or max_value <= 1.5:
                return 1.0, "floating-point data already on 0..1 reflectance: used as is"
            if self.reflectance:
                return 10000.0, "floating-point reflectance x 10000: value / 10000"
            raise FbpError(
                f"{path} holds floating-point values up to {max_value:g}, not 0..1 reflectance, "
                f"and the '{self.label}' profile has no scale; give one, e.g. "
                f"custom:nir=4,r=1,g=2,b=3,scale={max_value:.0f}."
            )
        raise FbpError(
            f"{path} has {dtype} pixels, which the '{self.label}' profile cannot scale to 0..1 by itself; "
            "give the scale, e.g. custom:nir=4,r=1,g=2,b=3,scale=4095."
        )


PROFILES: dict[str, SensorProfile] = {
    p.name: p
    for p in [
        SensorProfile(name="gaofen2", title="Gaofen-2 PMS multispectral (B,G,R,NIR, 10-bit DN, 4 m)", gsd=4.0,
                      band_order={4: (4, 3, 2, 1)}, bit_depth=10),
        SensorProfile(name="gaofen1", title="Gaofen-1 PMS multispectral (B,G,R,NIR, 10-bit DN, 8 m)", gsd=8.0,
                      band_order={4: (4, 3, 2, 1)}, bit_depth=10),
        SensorProfile(name="planetscope",
                      title="PlanetScope surface reflectance (4-band B,G,R,NIR or 8-band; x10000; 3 m)",
                      gsd=3.0, band_order={4: (4, 3, 2, 1), 8: (8, 6, 4, 2)}, reflectance=True,
                      working_gsd=4.0),
        SensorProfile(name="sentinel2",
                      title="Sentinel-2 L1C/L2A (13-, 12- or 4-band stack, or B02,B03,B04,B08 files; 10 m)",
                      gsd=10.0, band_order={13: (8, 4, 3, 2), 12: (8, 4, 3, 2), 4: (4, 3, 2, 1)},
                      reflectance=True, offset_from_metadata=True),
        SensorProfile(name="fbp8bit",
                      title="Five-Billion-Pixels 8-bit NIR,R,G,B files (CMYK-tagged, read raw; 4 m)",
                      gsd=4.0, band_order={4: (1, 2, 3, 4)}, raw_gtiff=True),
        SensorProfile(name="rgbn", title="Generic 4-band R,G,B,NIR (aerial such as NAIP)", gsd=None,
                      band_order={4: (4, 1, 2, 3)}),
        SensorProfile(name="bgrn", title="Generic 4-band B,G,R,NIR", gsd=None, band_order={4: (4, 3, 2, 1)}),
    ]
}

_CUSTOM_HELP = "custom:nir=4,r=1,g=2,b=3[,scale=255][,offset=0][,gsd=5][,working_gsd=4]"


def _number(key: str, value: str, text: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise FbpError(f"Sensor '{text}': {key}={value!r} is not a number; write e.g. {key}=1000.") from None


def get_profile(name_or_mapping: str) -> SensorProfile:
    """A profile by name, with optional overrides (``sentinel2:offset=1000``), or a custom band mapping.

    ``custom:nir=4,r=1,g=2,b=3[,scale=255][,offset=0][,gsd=5]`` takes 1-based band numbers (a band may
    repeat); ``scale``/``offset`` apply to every band; keys ``scale``, ``offset``, ``gsd`` and
    ``working_gsd`` may also follow a named profile.
    """
    text = name_or_mapping.strip()
    name, _, rest = text.partition(":")
    name = name.strip().lower()
    pairs: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not value.strip():
            raise FbpError(f"Sensor '{text}': '{item}' is not key=value; write e.g. {_CUSTOM_HELP}.")
        pairs[key.strip().lower()] = value.strip()
    if name == "custom":
        missing = [r for r in ("nir", "r", "g", "b") if r not in pairs]
        if missing:
            raise FbpError(f"Sensor '{text}' lacks {', '.join(missing)}; write {_CUSTOM_HELP}.")
        bands = []
        for role in ("nir", "r", "g", "b"):
            v = pairs.pop(role)
            if not v.isdigit() or int(v) < 1:
                raise FbpError(
                    f"Sensor '{text}': {role}={v!r} must be a band number from 1; write {_CUSTOM_HELP}."
                )
            bands.append(int(v))
        base = SensorProfile(
            name="custom", title="Custom band mapping", gsd=None, band_order={0: tuple(bands)}
        )
    elif name in PROFILES:
        base = PROFILES[name]
    else:
        raise FbpError(
            f"Unknown sensor '{text}'; choose one of {', '.join(PROFILES)}, 'auto', or {_CUSTOM_HELP}."
        )
    if not pairs:
        return base if name != "custom" else replace(base, spec=text)
    changes: dict = {}
    for key, value in pairs.items():
        if key not in ("scale", "offset", "gsd", "working_gsd"):
            raise FbpError(
                f"Sensor '{text}': unknown key '{key}'; allowed are scale, offset, gsd, working_gsd."
            )
        num = _number(key, value, text)
        if key in ("scale", "gsd", "working_gsd") and num <= 0:
            raise FbpError(f"Sensor '{text}': {key} must be positive, got {value}.")
        changes[key] = num
    if "offset" in changes:
        changes["offset_from_metadata"] = False  # forced by the user
    return replace(base, spec=text, **changes)


# ----------------------------------------------------------------------------------------------- detection


def s2_band_name(path: str) -> str | None:
    """The Sentinel-2 band in a file name ("02", "8A", ...), or None; the last match wins (T33..._B08_10m)."""
    found = _S2_BAND_RE.findall(Path(path).name)
    return found[-1].upper() if found else None


def s2_band_files(paths: list[str]) -> list[str] | None:
    """``paths`` ordered B02, B03, B04, B08 (B, G, R, NIR) when they are exactly those Sentinel-2 band
    files."""
    names = [s2_band_name(p) for p in paths]
    if sorted(n or "" for n in names) != sorted(S2_MODEL_BANDS):
        return None
    return [paths[names.index(band)] for band in S2_MODEL_BANDS]


def choose(image, sensor: str | None = "auto", *, rpc_height: float | None = None,
           rpc_dem: str | None = None) -> tuple[SensorProfile, str]:
    """(profile, reason) for ``sensor``: a profile name, a custom mapping, or "auto" (``detect``).

    A delivered product (delivered/: a Sentinel-2 SAFE, a PlanetScope scene, an RPC image) brings its own
    profile (bands by name, its offsets); a user's custom mapping replaces it, a named profile adds its
    overrides (``sentinel2:offset=0``) to it."""
    single = image[0] if isinstance(image, (list, tuple)) and len(image) == 1 else image
    if not isinstance(single, (list, tuple)):
        from .delivered import recognise

        product = recognise(single, rpc_height=rpc_height, rpc_dem=rpc_dem)
        if product is not None:
            return _product_profile(product, sensor)
    if sensor in (None, "", "auto"):
        return detect(image)
    return get_profile(sensor), f"chosen by the user ({sensor})"


def _product_profile(product, sensor: str | None) -> tuple[SensorProfile, str]:
    auto = sensor in (None, "", "auto")
    if product.profile is None:  # an RPC image of no known sensor: its (warped) pixels decide
        if auto:
            ds = product.dataset if not isinstance(product.dataset, str) else open_dataset(product.dataset)
            prof, why = _detect_ds(ds, product.path, ds.RasterCount - (1 if product.alpha else 0))
            return prof, f"{product.reason}; {why}"
        return get_profile(sensor), f"{product.reason}; sensor chosen by the user ({sensor})"
    why = product.reason + (f"; {product.sensor_reason}" if product.sensor_reason else "")
    if auto:
        return product.profile, why
    user = get_profile(sensor)
    if user.name == "custom":
        return user, f"{product.reason}; bands chosen by the user ({sensor})"
    if user.name != product.profile.name:
        return user, f"{product.reason}; sensor chosen by the user ({sensor})"
    base = PROFILES[user.name]
    changes = {k: getattr(user, k) for k in ("scale", "offset", "gsd", "working_gsd")
               if getattr(user, k) != getattr(base, k)}
    return replace(product.profile, spec=user.spec, **changes), f"{why}; user overrides {sensor}"


def _choices() -> str:
    return ", ".join(PROFILES) + f", or {_CUSTOM_HELP}"


def _interp_names(ds: gdal.Dataset) -> list[str]:
    return [
        gdal.GetColorInterpretationName(ds.GetRasterBand(i + 1).GetColorInterpretation())
        for i in range(ds.RasterCount)
    ]


def _all_metadata_text(ds: gdal.Dataset) -> str:
    items = []
    for domain in [None, "IMAGERY"]:
        try:
            md = ds.GetMetadata(domain) if domain else ds.GetMetadata()
        except RuntimeError:
            md = {}
        items += [f"{k}={v}" for k, v in (md or {}).items()]
    return "\n".join(items)


def detect(path_or_paths) -> tuple[SensorProfile, str]:
    """Pick the sensor profile of a raster (or Sentinel-2 band files) in unambiguous cases, with a reason.

    Otherwise raise FbpError listing the profiles and the custom mapping.
    """
    if isinstance(path_or_paths, (list, tuple)):
        paths = [os.fspath(p) for p in path_or_paths]
        return detect(paths[0]) if len(paths) == 1 else _detect_band_files(paths)
    path = os.fspath(path_or_paths)
    ds = open_dataset(path)
    return _detect_ds(ds, path, ds.RasterCount)


def _detect_ds(ds: gdal.Dataset, path: str, n: int) -> tuple[SensorProfile, str]:
    """``detect`` on an open dataset whose first ``n`` bands are the image (a warped VRT adds alpha)."""
    dtype = gdal.GetDataTypeName(ds.GetRasterBand(1).DataType) if n else "none"
    interp = _interp_names(ds)
    descs = [ds.GetRasterBand(i + 1).GetDescription().strip().upper() for i in range(n)]
    md = _all_metadata_text(ds).upper()
    if n == 4 and dtype == "Byte" and ds.GetMetadataItem("SOURCE_COLOR_SPACE", "IMAGE_STRUCTURE") == "CMYK":
        return PROFILES["fbp8bit"], (
            "4-band 8-bit TIFF tagged CMYK (photometric separated), "
            "as the Five-Billion-Pixels NIR,R,G,B files are: read raw"
        )
    if n < 4:
        listing = ", ".join(f"band {i + 1} {c}" for i, c in enumerate(interp)) or "none"
        raise FbpError(
            f"{path} has {n} band(s) ({listing}) but the model needs NIR, R, G and B; "
            "use a 4-band image with near-infrared, stack a separate NIR band in (gdalbuildvrt -separate), "
            f"or map bands explicitly with {_CUSTOM_HELP} (a band may repeat, at the cost of accuracy)."
        )
    found = _by_metadata(md, n) or _by_layout(n, dtype, interp, descs)
    if found is not None:
        return found
    listing = ", ".join(f"{c}" for c in interp)
    raise FbpError(
        f"Cannot tell which sensor made {path} ({n} bands of {dtype}, colour interpretation {listing}); "
        f"choose its sensor profile (the Sensor box in QGIS, --sensor on the command line): {_choices()}."
    )


def _detect_band_files(paths: list[str]) -> tuple[SensorProfile, str]:
    """Several files are a sensor only as the four Sentinel-2 band files."""
    names = [s2_band_name(p) for p in paths]
    for p in paths:
        open_dataset(p)  # clear errors for missing or unreadable files
    if s2_band_files(paths) is not None:
        return PROFILES["sentinel2"], (
            "four files named for Sentinel-2 bands B02, B03, B04 and B08: stacked as B,G,R,NIR"
        )
    raise FbpError(
        f"{len(paths)} band files were given but they are not the four Sentinel-2 files B02, B03, B04, B08 "
        f"(found bands {', '.join(n or '?' for n in names)}); stack the bands into one raster "
        f"(gdalbuildvrt -separate) and choose a sensor: {_choices()}."
    )


def _by_metadata(md: str, n: int) -> tuple[SensorProfile, str] | None:
    """A profile named by the raster's metadata (satellite id, PlanetScope, Sentinel-2)."""
    for key, prof in (("GF2", "gaofen2"), ("GF1", "gaofen1")):
        if re.search(rf"SATELLITE_?ID={key}\b|\b{key}_PMS", md):
            return PROFILES[prof], f"metadata names the satellite {key}"
    if "PLANETSCOPE" in md and n in PROFILES["planetscope"].band_order:
        return PROFILES["planetscope"], f"metadata names PlanetScope and the raster has {n} bands"
    if re.search(r"SENTINEL-?2", md) and n in PROFILES["sentinel2"].band_order:
        return PROFILES["sentinel2"], f"metadata names Sentinel-2 and the raster has {n} bands"
    return None


def _by_layout(n: int, dtype: str, interp: list[str], descs: list[str]) -> tuple[SensorProfile, str] | None:
    """A profile the band count, data type, descriptions or colour interpretation give away."""
    if n == 13:
        return PROFILES["sentinel2"], (
            "13 bands, the Sentinel-2 L1C stack B01..B12 with B10: NIR,R,G,B = bands 8,4,3,2"
        )
    if n == 12:
        return PROFILES["sentinel2"], (
            "12 bands, the Sentinel-2 L2A stack B01..B12 without B10: NIR,R,G,B = bands 8,4,3,2"
        )
    if n == 8 and dtype == "UInt16":
        return PROFILES["planetscope"], (
            "8 bands of 16-bit data, the PlanetScope 8-band order: NIR,R,G,B = bands 8,6,4,2"
        )
    if n == 4 and [d.lstrip("B").lstrip("0") for d in descs] == ["2", "3", "4", "8"]:
        return PROFILES["sentinel2"], (
            "4 bands described B02, B03, B04, B08: a Sentinel-2 stack, NIR,R,G,B = 4,3,2,1"
        )
    if n == 4 and interp[:3] == ["Red", "Green", "Blue"]:
        return PROFILES["rgbn"], (
            f"4 bands with colour interpretation Red, Green, Blue, {interp[3]}: R,G,B,NIR, "
            "so NIR,R,G,B = 4,1,2,3"
        )
    if n == 4 and interp[:3] == ["Blue", "Green", "Red"]:
        return PROFILES["bgrn"], (
            f"4 bands with colour interpretation Blue, Green, Red, {interp[3]}: B,G,R,NIR, "
            "so NIR,R,G,B = 4,3,2,1"
        )
    return None


_ROLE_WORDS = {  # words in a band's description or colour interpretation that name its role
    "nir": ("NIR", "NEAR", "INFRARED", "B08", "B8", "NIR1"),
    "r": ("RED", "R", "B04", "B4"),
    "g": ("GREEN", "G", "B03", "B3"),
    "b": ("BLUE", "B", "B02", "B2"),
}


def mapping_example(path: str) -> str:
    """A band mapping ("nir=8,r=4,g=3,b=2") for ``path`` from its bands' descriptions and colour
    interpretations; bands it cannot name are filled in the usual B,G,R,NIR order of its first four bands."""
    ds = open_dataset(path)
    n = ds.RasterCount
    words = []
    for i in range(n):
        band = ds.GetRasterBand(i + 1)
        text = f"{band.GetDescription()} {gdal.GetColorInterpretationName(band.GetColorInterpretation())}"
        words.append(set(re.findall(r"[A-Z0-9]+", text.upper())))
    roles: dict[str, int] = {}
    for role in ("nir", "r", "g", "b"):  # NIR first: "RED" must not win a band described "RED EDGE"
        for i, found in enumerate(words):
            if i + 1 not in roles.values() and found & set(_ROLE_WORDS[role]) and \
                    not (role == "r" and "EDGE" in found):
                roles[role] = i + 1
                break
    fallback = dict(zip(("b", "g", "r", "nir"), range(1, min(n, 4) + 1), strict=False))
    return ",".join(f"{role}={roles.get(role, fallback.get(role, 1))}" for role in ("nir", "r", "g", "b"))
