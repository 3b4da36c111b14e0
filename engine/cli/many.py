"""``fbp-landcover map-many``: many scenes to per-scene maps and one mosaic (engine.many)."""

from __future__ import annotations

import argparse

from ..errors import FbpError
from ..inference.backends import BACKENDS
from ..many.mosaic import RULES
from ..models.devices import DEVICES
from . import EXIT_OK, EXIT_USER


def _sensor_overrides(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        name, sep, sensor = item.partition("=")
        if not sep or not name or not sensor:
            raise FbpError(f"--sensor-for {item!r} is not FILE=SENSOR (e.g. scene3.tif=gaofen1).")
        out[name] = sensor
    return out


def cmd_map_many(args, progress) -> int:
    from ..many import ManyJob, map_many
    from ..mapping import MapRequest
    from ..training.config import AdaptOptions

    if args.workers and args.scheduler:
        raise FbpError("Give either --workers (a local Dask cluster) or --scheduler (an existing one), "
                       "not both.")
    scene = MapRequest(image="", output="", model=args.model, sensor=args.sensor, stats=args.stats,
                       window=args.window, batch_size=args.batch_size, working_gsd=args.gsd,
                       device=args.device,
                       backend=args.backend, models_dir=args.models_dir,
                       adapt=AdaptOptions(iterations=args.adapt) if args.adapt else None)
    job = ManyJob(
        inputs=args.inputs, output_dir=args.output, request=scene, sensors=_sensor_overrides(args.sensor_for),
        crs=args.crs,
        resolution=args.resolution, overlap=args.overlap, zones=args.zones, zone_field=args.zone_field,
        workers=args.workers, scheduler=args.scheduler, overwrite=args.overwrite,
    )
    res = map_many(job, progress)
    progress.close()
    print(f"Scenes: {res.mapped} mapped, {res.skipped} already done, {len(res.failed)} failed "
          f"({res.megapixels:.1f} Mpx in {res.scene_seconds:.1f} s); manifest: {res.manifest}")
    if res.mosaic:
        g = res.grid
        print(f"Mosaic: {res.mosaic} ({g['width']}x{g['height']} px, overlap rule {args.overlap})")
        print(f"  virtual mosaic: {res.mosaic_vrt}")
        print(f"  confidence: {res.mosaic_confidence}")
        print(f"  areas: {res.areas_csv}")
        if res.zones_csv:
            print(f"  zones: {res.zones_csv}")
    for path, error in res.failed:
        print(f"FAILED {path}: {error}")
    return EXIT_USER if res.failed else EXIT_OK  # some scenes failed: a problem with those inputs


def add_commands(subparsers) -> argparse.ArgumentParser:
    """Add ``map-many`` to the fbp-landcover subcommands."""
    m = subparsers.add_parser("map-many",
                              help="map many scenes and mosaic them (resumable, optionally on Dask)")
    m.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="raster files or folders (*.tif *.tiff *.jp2 *.vrt)")
    m.add_argument("-o", "--output", required=True, help="output folder (per-scene maps, mosaic, manifest)")
    m.add_argument("--model", required=True,
                   help="our .fbpmodel file, a registered name, or unet_<city>.pth.tar")
    m.add_argument("--sensor", default="auto", help="sensor of every input (auto, a profile, custom:...)")
    m.add_argument("--sensor-for", action="append", metavar="FILE=SENSOR",
                   help="sensor of one input (file name or path); repeat as needed")
    m.add_argument("--crs", help="mosaic CRS, e.g. EPSG:32650 (default: the first scene's)")
    m.add_argument("--resolution", type=float, help="mosaic pixel size in CRS units (default: the finest)")
    m.add_argument("--overlap", default="confidence", choices=RULES,
                   help="who wins where scenes overlap (default: the more confident pixel)")
    m.add_argument("--zones", help="polygon layer: also write class areas per zone (zones.csv/json)")
    m.add_argument("--zone-field", help="field naming the zones (default: the feature id)")
    par = m.add_mutually_exclusive_group()
    par.add_argument("--workers", type=int, help="run on a local Dask cluster of N worker processes")
    par.add_argument("--scheduler", metavar="ADDRESS",
                     help="run on an existing Dask cluster (tcp://host:8786)")
    m.add_argument("--adapt", type=int, metavar="ITERATIONS", help="quick self-training on each scene first")
    m.add_argument("--stats", default="scene", help="scene | checkpoint | a city name | m1,..,m4,s1,..,s4")
    m.add_argument("--window", type=int)
    m.add_argument("--batch-size", type=int)
    m.add_argument("--gsd", type=float, help="working pixel size in metres (default: the sensor's)")
    m.add_argument("--device", default="auto", choices=DEVICES)
    m.add_argument("--backend", default="auto", choices=BACKENDS)
    m.add_argument("--models-dir", help="model folder (default: $FBP_LANDCOVER_MODELS or ~/.local/share)")
    m.add_argument("--overwrite", action="store_true",
                   help="map every scene again (ignore the manifest) and allow a non-empty output folder")
    m.set_defaults(func=cmd_map_many)
    return m
