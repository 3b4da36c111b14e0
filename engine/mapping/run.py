"""map_landcover: one raster to a styled 24-class GeoTIFF (and the optional confidence, areas, quicklook) —
the one entry the command line, the Processing algorithm, the dock and map-many call."""

from __future__ import annotations

import json
import os
import time

from osgeo import gdal

from .. import SOFTWARE, classes
from ..errors import FbpError
from ..inference.predict import STITCH_MODES, PredictSettings, coarse_scale, predict
from ..inference.tiling import choose_window
from ..io import sensors
from ..io.atomic import AtomicFiles
from ..io.normalize import FBP_SOURCE_STATS, Stats, resolve_stats
from ..products.areas import AreaCounter, area_warning, write_area_tables
from ..products.writers import class_writer, confidence_writer, quicklook_png
from ..progress import CancelFn, Progress, ProgressFn
from .request import MapRequest, MapResult, Outputs, plan_outputs

GDAL_CACHE_MB = 256
# Adapted weights exist only in memory, so onnxruntime would need a fresh ONNX export; below this many pixels
# torch runs them sooner than the export would pay for itself (bench/README.md measures both).
ADAPTED_ONNX_MIN_PIXELS = 100_000_000
ADAPT_SPAN = (0.05, 0.45)  # the part of the progress bar quick adaptation takes


def map_landcover(req: MapRequest, progress: ProgressFn | None = None,
                  is_cancelled: CancelFn | None = None) -> MapResult:
    """Map ``req.image`` to a styled 24-class GeoTIFF (and the optional confidence, areas, quicklook)."""
    from ..inference.backends import make_backend
    from ..io.raster import open_input
    from ..models import input_multiple
    from ..models.loading import load_model

    t0 = time.monotonic()
    prog = Progress(progress, is_cancelled)
    _bound_gdal_cache()
    outputs = plan_outputs(req)
    prog(0.0, "Loading the model")
    model, card, model_path = load_model(req.model, req.models_dir)
    profile, reason = sensors.choose(req.image, req.sensor, rpc_height=req.rpc_height, rpc_dem=req.rpc_dem)
    prog.stage(0, 0.02)(1.0, f"Sensor: {profile.title} ({reason})")
    with open_input(req.image, profile, working_gsd=req.working_gsd, mask=req.mask, extent=req.extent,
                    rpc_height=req.rpc_height, rpc_dem=req.rpc_dem) as inp:
        prog.stage(0.02, 0.05)(0.0, "Computing normalisation statistics")
        stats = resolve_stats(req.stats, inp, checkpoint_stats(req.stats, card))
        if req.adapt:
            from ..training.adapt import quick_adapt_for_mapping

            model, card = quick_adapt_for_mapping(model, card, inp, stats, req.adapt, prog.stage(*ADAPT_SPAN),
                                                  model_path=str(model_path))  # finds its source memory
        start = ADAPT_SPAN[1] if req.adapt else ADAPT_SPAN[0]
        name = _backend_name(req, inp.width * inp.height)
        weights_file = model_path if not req.adapt else None
        prog(start, _preparing_text(model, card, weights_file, name, req.device))
        backend = make_backend(model, card, weights_file, backend=name, device=req.device)
        settings = default_settings(req, backend, input_multiple(model), inp.width, inp.height,
                                    card.architecture)
        metadata = _metadata(req, card, model_path, profile, reason, stats, backend, settings)
        mask: dict = {}
        rows = _write_products(req, outputs, inp, backend, stats, settings, metadata, prog, start, mask)
        prog(1.0, "Done")
        return MapResult(
            output=str(outputs.classes), qml=str(outputs.qml),
            confidence=_text(outputs.confidence), areas_csv=_text(outputs.areas),
            areas_json=_text(outputs.areas_json), quicklook=_text(outputs.quicklook),
            sensor=profile.name, sensor_reason=reason, stats=stats, backend=backend.name,
            device=backend.device, device_reason=backend.reason, areas=rows,
            width=inp.width, height=inp.height, seconds=time.monotonic() - t0,
            adaptation=card.provenance.get("quick_adaptation") if req.adapt else None,
            mask=mask or None, area_warning=area_warning(inp.geotransform, inp.projection),
        )


def checkpoint_stats(policy, card) -> Stats | None:
    """The model's own statistics for ``--stats checkpoint``: the card's, else the FBP source statistics
    said as a fallback; FbpError for a model trained on per-scene statistics (it has none to give, and the
    FBP ones would misread the image)."""
    if policy != "checkpoint" or card.stats is not None:
        return card.stats
    trained = (card.provenance or {}).get("normalisation")
    if trained == "scene":
        raise FbpError(f"The model {card.name or 'given'} was trained with per-scene statistics and carries "
                       "none of its own, so --stats checkpoint has nothing to use; map with --stats scene "
                       "(the default, as it was trained), or give 'fbp', a city name or 8 numbers.")
    return Stats(FBP_SOURCE_STATS.mean, FBP_SOURCE_STATS.std,
                 "fbp (the model carries no statistics of its own: the FBP source statistics are used)")


def _preparing_text(model, card, weights_file, backend: str, device: str) -> str:
    """The stage line while the backend is made: the ONNX export is announced only when one will run (the
    onnx backend on the CPU, no export cached yet), not for torch, a GPU or a cached export."""
    from ..inference.onnx_cache import cached_onnx
    from ..models.devices import pick_device

    if backend == "torch" or (backend == "auto" and pick_device(device) == "cuda"):
        return "Loading the model"
    try:
        if cached_onnx(model, card, weights_file) is not None:
            return "Loading the model's fast CPU form (ONNX, exported earlier)"
    except OSError:
        pass
    return "Preparing the model to run (its first use on the CPU exports it to ONNX once, 10-60 s)"


def _backend_name(req: MapRequest, pixels: int) -> str:
    """The backend 'auto' means here: torch for the reproduction mode (what the reference ran) and for freshly
    adapted weights on a raster too small to repay their ONNX export; else the request's."""
    if req.backend == "auto" and req.stitch == "centre-crop":
        return "torch"
    if req.backend == "auto" and req.adapt and pixels < ADAPTED_ONNX_MIN_PIXELS:
        return "torch"
    return req.backend


def default_settings(req: MapRequest, backend, multiple: int, width: int, height: int,
                     architecture: str = "smp") -> PredictSettings:
    """Window, overlap and batch.

    centre-crop: the reference scheme (512 windows, stride 256). blend: unless given, each axis gets the
    window (a multiple of what the network needs, 384..1024 px) that computes the fewest pixels with a
    64-pixel blended margin — about 1.1-1.3x the raster's pixels, where the reference scheme computes 4x.
    """
    if req.stitch not in STITCH_MODES:
        raise FbpError(f"Unknown stitching mode {req.stitch!r}; choose one of {', '.join(STITCH_MODES)}.")
    want_conf = req.confidence is not None
    if req.stitch == "centre-crop":  # one window at a time, as the reference: bit-identical results
        return PredictSettings(window=512, overlap=256, batch_size=req.batch_size or 1, stitch="centre-crop",
                               confidence=want_conf)
    gpu = backend.device.startswith("cuda")
    overlap = req.overlap if req.overlap is not None else 64
    # The authors' U-Net keeps kilobytes of activations per pixel on the CPU: windows above 640 px cost
    # gigabytes (bench/README.md).
    high = 1024 if gpu or architecture != "fbp_unet" else 640
    if req.window:
        wx = wy = req.window
    else:
        wx = choose_window(width, overlap, multiple, high=high)
        wy = choose_window(height, overlap, multiple, high=high)
    for w in (wx, wy):
        if w % multiple:
            raise FbpError(f"The window ({w}) must be a multiple of {multiple} for this model's network.")
        if not 0 <= overlap < w:
            raise FbpError(f"The overlap ({overlap}) must be at least 0 and smaller than the window ({w}).")
    pixels = wx * wy
    batch = req.batch_size or (max(1, (8 if gpu else 2) * 512 * 512 // pixels))
    return PredictSettings(window=wx, window_y=wy, overlap=overlap, batch_size=batch, stitch="blend",
                           confidence=want_conf)


def _write_products(req: MapRequest, outputs: Outputs, inp, backend, stats, settings: PredictSettings,
                    metadata: dict[str, str], prog: Progress, start: float, mask: dict) -> list[dict]:
    """Predict into the class (and confidence) rasters (progress from ``start``) and write every output as one
    set; returns the area rows and fills ``mask`` with what the masks took out."""
    with AtomicFiles() as files:
        class_tmp = files.temp_for(outputs.classes)
        cw = files.closing(class_writer(class_tmp, inp.width, inp.height, inp.geotransform, inp.projection))
        fw = None
        if outputs.confidence:
            fw = files.closing(confidence_writer(files.temp_for(outputs.confidence), inp.width, inp.height,
                                                 inp.geotransform, inp.projection))
        counter = AreaCounter(inp.geotransform, inp.projection)

        has_masks = bool(inp.mask_summary(estimate=False)["used"])

        def sink(x, y, block, conf):
            cw.write(x, y, block)
            counter.add(y, block)
            if has_masks:
                counter.add_masked(y, inp.masked(x, y, block.shape[1], block.shape[0]))
            if fw is not None and conf is not None:
                fw.write(x, y, conf)

        predict(inp, backend, stats, settings, sink, prog.stage(start, 0.95))
        rows = counter.table()
        if sum(r["pixels"] for r in rows) == 0:
            raise FbpError(f"{_describe(req.image)} has no valid pixels to map (all nodata or masked); "
                           "check its nodata value, the mask and the extent.")
        mask.update(inp.mask_summary(estimate=False), **counter.masked_totals(inp.width * inp.height))
        mask.pop("masked_share_estimate", None)
        metadata["FBP_MASK"] = json.dumps(mask, sort_keys=True)
        prog.stage(0.95, 1.0)(0.0, "Writing overviews and styles")
        cw.finish("MODE", metadata)
        if fw is not None:
            fw.finish("AVERAGE", metadata)
        files.write_text(outputs.qml, classes.qml())
        if outputs.areas:
            write_area_tables(rows, outputs.areas, str(outputs.classes), files,
                              masked=mask if mask["used"] else None, warning=counter.pixel_area.warning)
        if outputs.quicklook:
            quicklook_png(class_tmp, files.temp_for(outputs.quicklook))
        prog.check()
    return rows


def _blend_resolution(backend, settings: PredictSettings) -> str:
    """What FBP_STITCH adds when the blend ran at the model's coarse resolution."""
    scale = coarse_scale(backend, settings)
    return (f" at 1/{scale} resolution, upsampled once (bilinear, half-pixel centres)" if scale > 1 else "")


def _bound_gdal_cache() -> None:
    """GDAL's block cache defaults to 5 % of RAM and fills with the output's dirty blocks on wide rasters;
    GDAL_CACHE_MB is plenty for row-band writing. A user's GDAL_CACHEMAX wins."""
    if "GDAL_CACHEMAX" not in os.environ and gdal.GetCacheMax() > GDAL_CACHE_MB * 2**20:
        gdal.SetCacheMax(GDAL_CACHE_MB * 2**20)


def _product(req) -> str:
    from ..io.delivered import recognise

    if isinstance(req.image, (list, tuple)):
        return ""
    product = recognise(req.image, rpc_height=req.rpc_height, rpc_dem=req.rpc_dem)
    return json.dumps(dict(product.facts, kind=product.kind), default=str, sort_keys=True) if product else ""


def _text(path) -> str | None:
    return None if path is None else str(path)


def _describe(image) -> str:
    return ", ".join(map(str, image)) if isinstance(image, (list, tuple)) else str(image)


def _metadata(req, card, model_path, profile, reason, stats, backend, settings) -> dict[str, str]:
    return {
        "FBP_SOFTWARE": SOFTWARE,
        "FBP_SOURCE_IMAGE": _describe(req.image),
        "FBP_MODEL": str(model_path),
        "FBP_MODEL_NAME": card.name or "",
        "FBP_MODEL_PROVENANCE": json.dumps(card.provenance, sort_keys=True),
        "FBP_SENSOR": profile.name,
        "FBP_SENSOR_REASON": reason,
        "FBP_PRODUCT": _product(req),
        "FBP_STATS": json.dumps(stats.to_dict()),
        "FBP_STITCH": (f"{settings.stitch} window={settings.window}x{settings.rows} "
                       f"overlap={settings.overlap}" + _blend_resolution(backend, settings)),
        "FBP_BACKEND": f"{backend.name} on {backend.device}",
        "FBP_CLASSES": "Five-Billion-Pixels 24 classes; 0 = nodata",
    }
