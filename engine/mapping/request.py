"""What a mapping run is asked (MapRequest) and what it gives back (MapResult), and the outputs it will
write."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FbpError
from ..io.atomic import check_destination
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


@dataclass(frozen=True)
class Outputs:
    """The files a run writes, checked before any work."""

    classes: Path
    qml: Path
    confidence: Path | None
    areas: Path | None
    areas_json: Path | None
    quicklook: Path | None


def plan_outputs(req: MapRequest) -> Outputs:
    """Check every output of ``req`` (FbpError for an existing one without overwrite, or a folder that cannot
    be written) and say where each goes."""
    out = check_destination(req.output, req.overwrite, "output map")
    confidence = check_destination(req.confidence, req.overwrite,
                                   "confidence raster") if req.confidence else None
    areas = check_destination(req.areas, req.overwrite, "area table") if req.areas else None
    quicklook = check_destination(req.quicklook, req.overwrite, "quicklook") if req.quicklook else None
    areas_json = check_destination(json_beside(areas), req.overwrite, "area table (JSON)") if areas else None
    qml = out.with_suffix(".qml")
    if not req.overwrite and qml.exists():
        raise FbpError(f"The style file {qml} already exists beside the output; "
                       "choose another output name or ask to overwrite (--overwrite).")
    return Outputs(out, qml, confidence, areas, areas_json, quicklook)
