"""What a mapping run is asked (MapRequest) and what it gives back (MapResult), and the outputs it will
write."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FbpError
from ..io.atomic import RASTER_SUFFIXES, check_outputs
from ..io.normalize import Stats
from ..products.areas import json_beside
from ..training.config import AdaptOptions


@dataclass
class MapRequest:
    image: str | list[str]  # a raster, or the Sentinel-2 band files
    output: str  # the class GeoTIFF; its QML style is written beside it
    model: str  # our .fbpmodel, a registered name, or an authors' unet_<city>.pth.tar
    sensor: str = "auto"  # a profile name, "custom:nir=4,r=1,g=2,b=3", or "auto"
    stats: str = "scene"  # "scene" | "checkpoint" | a city name | "m1,m2,m3,m4,s1,s2,s3,s4"
    stitch: str = "blend"  # "blend" | "centre-crop"
    window: int | None = None  # None: the engine's choice for the model and device
    overlap: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    backend: str = "auto"
    working_gsd: float | None = None  # None: the sensor profile's default
    # "auto" (None): the product's own quality masks (Sentinel-2 SCL, PlanetScope UDM2, ...); "none"; or a
    # raster whose non-zero pixels are left unmapped (0), combined with the product's own
    mask: str | None = None
    extent: tuple[float, float, float, float] | None = None  # xmin, ymin, xmax, ymax in the raster's CRS
    confidence: str | None = None  # a float32 GeoTIFF of 1 - normalised entropy, nodata -1
    areas: str | None = None  # a CSV area table; the JSON is written beside it
    quicklook: str | None = None  # a PNG with a legend
    overwrite: bool = False
    models_dir: str | None = None
    adapt: AdaptOptions | None = None  # quick adaptation to the image before mapping
    rpc_height: float | None = None  # RPC images: constant height (m); None: the RPCs' HEIGHT_OFF
    rpc_dem: str | None = None  # RPC images: a DEM raster instead of a constant height


@dataclass
class MapResult:
    output: str
    qml: str
    confidence: str | None
    areas_csv: str | None
    areas_json: str | None
    quicklook: str | None
    sensor: str
    sensor_reason: str
    stats: Stats
    backend: str
    device: str
    device_reason: str
    areas: list[dict] = field(default_factory=list)  # classes 1..24: index, name, hex, pixels, hectares, ...
    width: int = 0
    height: int = 0
    seconds: float = 0.0
    # what quick adaptation did (None: none was asked): method, iterations, final_pseudo_label_share,
    # source_used, … as the adapted card's provenance records it
    adaptation: dict | None = None
    # the masks used (names and rules), what was found, and the masked pixels, km² and share of the grid
    mask: dict | None = None
    # why the areas are not real areas (no georeferencing, no CRS), or None
    area_warning: str | None = None


@dataclass(frozen=True)
class Outputs:
    """The files a run writes, checked before any work."""

    classes: Path
    qml: Path
    confidence: Path | None
    areas: Path | None
    areas_json: Path | None
    quicklook: Path | None


def request_inputs(req: MapRequest) -> list[tuple[str, str]]:
    """The files a run reads (what, path): the image or band files, the mask, and a model given as a file."""
    images = req.image if isinstance(req.image, (list, tuple)) else [req.image]
    found = [("input image", str(p)) for p in images if p]
    if req.mask:
        found.append(("mask", str(req.mask)))
    if req.model and Path(req.model).expanduser().is_file():
        found.append(("model", str(req.model)))
    return found


def check_numbers(req: MapRequest) -> None:
    """FbpError for a number no run can use (nan, inf, zero or negative), before any work."""
    for name, value, low, strict in (("--gsd (working pixel size)", req.working_gsd, 0, True),
                                     ("--batch-size", req.batch_size, 1, False),
                                     ("--window", req.window, 1, False),
                                     ("--overlap", req.overlap, 0, False)):
        if value is not None and not (math.isfinite(value) and (value > low if strict else value >= low)):
            raise FbpError(f"{name} is {value}; give a finite number {'above' if strict else 'of at least'} "
                           f"{low}, or leave it out for the default.")
    if req.extent is not None and not all(math.isfinite(v) for v in req.extent):
        raise FbpError(f"--extent {','.join(map(str, req.extent))} holds a value that is not a finite "
                       "number; give xmin,ymin,xmax,ymax in the raster's CRS.")


def plan_outputs(req: MapRequest) -> Outputs:
    """Check every output of ``req`` as one set before any work (FbpError for a suffix that does not fit, two
    outputs that are one file, an output that is an input, an existing one without overwrite, a folder that
    cannot be written), clear what a killed earlier run left of them, and say where each goes."""
    check_numbers(req)
    out = Path(req.output).expanduser().absolute()
    wanted: list[tuple[str, Path, tuple[str, ...] | None]] = [
        ("output map", out, RASTER_SUFFIXES),
        ("style file beside the output map", out.with_suffix(".qml"), None),
    ]
    if req.confidence:
        wanted.append(("confidence raster", Path(req.confidence), RASTER_SUFFIXES))
    if req.areas:
        wanted.append(("area table", Path(req.areas), (".csv",)))
        wanted.append(("area table (JSON, beside the CSV)", json_beside(req.areas), None))
    if req.quicklook:
        wanted.append(("quicklook", Path(req.quicklook), (".png",)))
    paths = dict(zip((w for w, _p, _s in wanted), check_outputs(wanted, request_inputs(req), req.overwrite),
                     strict=True))
    get = paths.get
    return Outputs(paths["output map"], paths["style file beside the output map"], get("confidence raster"),
                   get("area table"), get("area table (JSON, beside the CSV)"), get("quicklook"))


def describe_mask(mask: dict | None) -> str:
    """A run's mask in words: "SCL: cloud …: 0.42 km² masked (3.1 % of the grid)", or "no mask (why)"."""
    if not mask:
        return "no mask"
    if mask.get("used"):
        return (f"mask {'; '.join(mask['used'])}: {mask.get('masked_km2', 0):g} km² masked "
                f"({100 * mask.get('masked_share', 0):.1f} % of the grid)")
    return f"no mask ({mask.get('found') or 'none found'})"
