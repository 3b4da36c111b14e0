"""``fbp-landcover map | info | models | collapse``: one raster to a land-cover map, what the engine would do
with a raster, the models folder, and a map re-coded to a coarser legend."""

from __future__ import annotations

import json
import math
import sys

from ..errors import FbpError
from ..inference.backends import BACKENDS
from ..inference.predict import STITCH_MODES
from ..models.devices import DEVICES
from ..training.config import METHODS
from . import EXIT_OK


def _extent(text: str | None):
    if not text:
        return None
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        vals = ()
    finite = all(math.isfinite(v) for v in vals)
    if len(vals) != 4 or not finite or vals[0] >= vals[2] or vals[1] >= vals[3]:
        raise FbpError(f"--extent {text!r} is not xmin,ymin,xmax,ymax (finite numbers) with xmin < xmax and "
                       "ymin < ymax (in the raster's CRS).")
    return vals


def cmd_map(args, progress) -> int:
    from ..mapping import MapRequest, map_landcover
    from ..mapping.request import describe_mask
    from ..training.config import AdaptOptions

    adapt = None
    if args.adapt:
        given = {"method": args.adapt_method, "seed": args.adapt_seed, "lr": args.adapt_lr}
        adapt = AdaptOptions(iterations=args.adapt, guard=not args.no_guard,
                             **{k: v for k, v in given.items() if v is not None})
    req = MapRequest(
        image=args.image if len(args.image) > 1 else args.image[0], output=args.output, model=args.model,
        sensor=args.sensor, stats=args.stats, stitch=args.stitch, window=args.window, overlap=args.overlap,
        batch_size=args.batch_size, device=args.device, backend=args.backend, working_gsd=args.gsd,
        mask=args.mask, extent=_extent(args.extent), confidence=args.confidence, areas=args.areas,
        quicklook=args.quicklook, overwrite=args.overwrite, models_dir=args.models_dir, adapt=adapt,
        rpc_height=args.rpc_height, rpc_dem=args.rpc_dem,
    )
    from ..io.plausibility import check

    for warning in check(req.image, req.sensor):
        print(f"warning: check the sensor: {warning}", file=sys.stderr)
    from ..mapping.estimate import planned_size, size_warning

    size = planned_size(req.image, req.sensor, working_gsd=req.working_gsd, extent=req.extent,
                        rpc_height=req.rpc_height, rpc_dem=req.rpc_dem)
    large = size_warning(*size) if size else None
    if large:
        print(f"note: {large} Ctrl-C cancels and leaves nothing behind.", file=sys.stderr)
    res = map_landcover(req, progress)
    progress.close()
    print(f"Land-cover map: {res.output} ({res.width}x{res.height} px, {res.seconds:.1f} s)")
    print(f"  sensor {res.sensor}: {res.sensor_reason}")
    print(f"  model run by {res.backend} on {res.device} ({res.device_reason})")
    print(f"  normalisation statistics: {res.stats.source}")
    if res.mask:
        print(f"  {describe_mask(res.mask)}")
    if res.adaptation:
        from ..training.adapt import describe

        print(f"  adaptation: {describe(res.adaptation)}")
    for label, path in [("style", res.qml), ("confidence", res.confidence), ("areas", res.areas_csv),
                        ("areas (JSON)", res.areas_json), ("quicklook", res.quicklook)]:
        if path:
            print(f"  {label}: {path}")
    if res.area_warning:
        print(f"warning: areas: {res.area_warning}", file=sys.stderr)
    top = sorted(res.areas, key=lambda r: -r["km2"])[:5]
    print("  largest classes: " + ", ".join(f"{r['name']} {r['percent']:.1f} %" for r in top if r["pixels"]))
    return EXIT_OK


def cmd_info(args, progress) -> int:
    from ..io.raster import open_input
    from ..io.sensors import choose

    image = args.image if len(args.image) > 1 else args.image[0]
    profile, reason = choose(image, args.sensor, rpc_height=args.rpc_height, rpc_dem=args.rpc_dem)
    with open_input(image, profile, working_gsd=args.gsd, mask=args.mask, rpc_height=args.rpc_height,
                    rpc_dem=args.rpc_dem) as inp:
        info = inp.describe()
        from ..inference.predict import PredictSettings
        from ..inference.tiling import axis_starts, choose_window

        overlap = 64
        wx, wy = choose_window(inp.width, overlap, 32), choose_window(inp.height, overlap, 32)
        nx, ny = len(axis_starts(inp.width, wx, overlap)), len(axis_starts(inp.height, wy, overlap))
        settings = PredictSettings(window=wx, window_y=wy, overlap=overlap)
        acc_mb = 25 * 4 * wy * min(inp.width, settings.panel_width(inp.width) + wx) / 2**20
        info.update({
            "sensor": profile.name, "sensor_reason": reason,
            "windows": {"window": [wx, wy], "overlap": overlap, "columns": nx, "rows": ny, "total": nx * ny,
                        "computed_pixels_ratio": round(nx * wx * ny * wy / (inp.width * inp.height), 3)},
            "memory_estimate_mb": round(acc_mb + 400),
        })
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        for k, v in info.items():
            print(f"{k}: {v}")
    return EXIT_OK


def cmd_models(args, progress) -> int:
    from ..models import registry

    folder = args.models_dir or registry.default_models_dir()
    if args.models_cmd == "list":
        entries = registry.list_models(folder)
        if not entries:
            print(f"No models in {folder}. Add one with: fbp-landcover models import FILE")
        for name, card, path in entries:
            print(f"{name}\t{card.architecture}{'/' + card.encoder if card.encoder else ''}\t"
                  f"sensor={card.sensor or '-'}\t{path}")
    elif args.models_cmd == "import":
        from ..inference.onnx_cache import PREPARE_MESSAGE, prepare
        from ..models.card import MEMORY_SUFFIX, companion

        path = registry.add_model(args.file, folder, name=args.name, overwrite=args.overwrite)
        memory = companion(path, MEMORY_SUFFIX)
        print(f"Imported {args.file} as {path}"
              + (f" with its source memory {memory.name}" if memory.is_file() else " (no source memory)"))
        if not args.no_prepare:
            print(f"{PREPARE_MESSAGE}…", flush=True)
            print(f"  fast CPU form: {prepare(path)[1]}")
    elif args.models_cmd == "info":
        from ..models.loading import load_model

        _, card, path = load_model(args.model, folder)
        print(json.dumps({"path": str(path), **card.to_dict()}, indent=2, default=str))
    return EXIT_OK


def cmd_collapse(args, progress) -> int:
    from ..products.collapse import collapse_raster

    out = collapse_raster(args.map, args.legend, args.output, overwrite=args.overwrite, progress=progress)
    progress.close()
    print(f"Collapsed map: {out} ({args.legend} legend)")
    return EXIT_OK


def _product_options(p) -> None:
    p.add_argument("--mask", default="auto",
                   help="auto: the product's own quality mask (Sentinel-2 SCL or MSK_CLASSI, PlanetScope "
                        "UDM2); "
                        "none; or a raster whose non-zero pixels are masked (cloud, shadow), added to the "
                        "product's own")
    p.add_argument("--rpc-height", type=float, metavar="METRES",
                   help="RPC images (Gaofen L1A): constant terrain height (default: the RPCs' mean height)")
    p.add_argument("--rpc-dem", metavar="RASTER", help="RPC images: a DEM for the orthorectification")


def add_commands(sub) -> None:
    """Add map, info, models and collapse to the ``fbp-landcover`` subparsers."""
    from ..classes import available_collapses

    m = sub.add_parser("map", help="map a raster to a styled 24-class GeoTIFF")
    m.add_argument("image", nargs="+",
                   help="raster file, a delivered product (Sentinel-2 .SAFE folder, .SAFE.zip or "
                        "MTD_MSIL*.xml; a PlanetScope AnalyticMS[_SR] tif; a Gaofen L1A or other RPC image), "
                        "or the four Sentinel-2 band files B02 B03 B04 B08")
    m.add_argument("-o", "--output", required=True, help="class GeoTIFF to write")
    m.add_argument("--model", required=True, help="our .fbpmodel file, a registered name, "
                                                  "or unet_<city>.pth.tar")
    m.add_argument("--sensor", default="auto", help="auto, gaofen2, gaofen1, planetscope, sentinel2, "
                                                    "fbp8bit, rgbn, bgrn, or custom:nir=4,r=1,g=2,b=3")
    m.add_argument("--stats", default="scene", help="scene | checkpoint | "
                                                    "a city name | m1,m2,m3,m4,s1,s2,s3,s4")
    m.add_argument("--stitch", default="blend", choices=STITCH_MODES)
    m.add_argument("--window", type=int)
    m.add_argument("--overlap", type=int)
    m.add_argument("--batch-size", type=int)
    m.add_argument("--device", default="auto", choices=DEVICES)
    m.add_argument("--backend", default="auto", choices=BACKENDS)
    m.add_argument("--gsd", type=float, help="working pixel size in metres (default: the sensor's)")
    _product_options(m)
    m.add_argument("--extent", help="xmin,ymin,xmax,ymax in the raster's CRS")
    m.add_argument("--confidence", metavar="PATH", help="also write a confidence GeoTIFF")
    m.add_argument("--areas", metavar="PATH", help="also write a per-class area table (CSV, and JSON beside)")
    m.add_argument("--quicklook", metavar="PATH", help="also write a PNG picture with a legend")
    m.add_argument("--adapt", type=int, metavar="ITERATIONS", help="quick self-training on this image first")
    m.add_argument("--adapt-method", choices=METHODS, help="with --adapt: the method (default auto: Siamese "
                   "with the model's source memory, else bn+kl)")
    m.add_argument("--adapt-seed", type=int, help="with --adapt: the seed (default 0)")
    m.add_argument("--adapt-lr", type=float, help="with --adapt: the learning rate (default 0.001)")
    m.add_argument("--no-guard", action="store_true", help="with --adapt: keep the adapted model even when "
                   "the guard's checks say the adaptation went wrong")
    m.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    m.add_argument("--models-dir", help="model folder (default: $FBP_LANDCOVER_MODELS or ~/.local/share)")
    m.set_defaults(func=cmd_map)

    i = sub.add_parser("info", help="what the engine would do with a raster")
    i.add_argument("image", nargs="+")
    i.add_argument("--sensor", default="auto")
    i.add_argument("--gsd", type=float)
    _product_options(i)
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_info)

    mo = sub.add_parser("models", help="import, list and describe models")
    mo.add_argument("--models-dir")
    msub = mo.add_subparsers(dest="models_cmd", required=True)
    imp = msub.add_parser("import", help="add our checkpoint or an authors' unet_<city>.pth.tar")
    imp.add_argument("file")
    imp.add_argument("--name")
    imp.add_argument("--overwrite", action="store_true")
    imp.add_argument("--no-prepare", action="store_true",
                     help="do not export the fast CPU (ONNX) form now (the first map then does it)")
    msub.add_parser("list", help="list registered models")
    inf = msub.add_parser("info", help="a model's metadata")
    inf.add_argument("model")
    mo.set_defaults(func=cmd_models)
    from .training import add_memory_command

    add_memory_command(msub)

    c = sub.add_parser("collapse", help="re-code a class map to a coarser legend")
    c.add_argument("map", help="class GeoTIFF written by fbp-landcover map")
    c.add_argument("legend", help=f"{', '.join(available_collapses())} or a legend JSON file")
    c.add_argument("-o", "--output", required=True, help="collapsed GeoTIFF to write")
    c.add_argument("--overwrite", action="store_true", help="replace an existing output")
    c.set_defaults(func=cmd_collapse)
