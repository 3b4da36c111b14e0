"""Map land cover: the one entry point the command line, the Processing algorithm and the dock call."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from .. import SOFTWARE, classes
from ..errors import FbpError
from ..inference.predict import STITCH_MODES, PredictSettings, predict
from ..inference.tiling import choose_window
from ..io import sensors
from ..io.atomic import AtomicFiles, check_destination
from ..io.normalize import Stats, resolve_stats
from ..products.areas import AreaCounter, json_beside, write_area_tables
from ..products.writers import class_writer, confidence_writer, quicklook_png
from ..progress import CancelFn, Progress, ProgressFn
from ..training.config import AdaptOptions


@dataclass
class MapRequest:
    image: str | list[str]
    output: str
    model: str
    sensor: str = "auto"
    stats: str = "scene"
    stitch: str = "blend"
    window: int | None = None
    overlap: int | None = None
    batch_size: int | None = None
    device: str = "auto"
    backend: str = "auto"
    working_gsd: float | None = None
    mask: str | None = None
    extent: tuple[float, float, float, float] | None = None
    confidence: str | None = None
    areas: str | None = None
    quicklook: str | None = None
    overwrite: bool = False
    models_dir: str | None = None
    adapt: AdaptOptions | None = None  # quick adaptation to the image before mapping


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
    areas: list[dict] = field(default_factory=list)
    width: int = 0
    height: int = 0
    seconds: float = 0.0


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
    # The authors' U-Net keeps ~2 KB of activations per pixel on the CPU: 640 px windows stay near 1.2 GB.
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


def map_landcover(req: MapRequest, progress: ProgressFn | None = None,
                  is_cancelled: CancelFn | None = None) -> MapResult:
    """Map ``req.image`` to a styled 24-class GeoTIFF (and the optional confidence, areas, quicklook)."""
    from ..inference.backends import make_backend
    from ..io.raster import open_input
    from ..models.loading import load_model

    t0 = time.monotonic()
    prog = Progress(progress, is_cancelled)
    _bound_gdal_cache()
    out = check_destination(req.output, req.overwrite, "output map")
    qml_path = out.with_suffix(".qml")
    extra = {"confidence raster": req.confidence, "area table": req.areas, "quicklook": req.quicklook}
    dests = {k: check_destination(v, req.overwrite, k) for k, v in extra.items() if v}
    areas_json = json_beside(dests["area table"]) if "area table" in dests else None
    if areas_json is not None:
        check_destination(areas_json, req.overwrite, "area table (JSON)")
    if req.overwrite is False and qml_path.exists():
        raise FbpError(f"The style file {qml_path} already exists beside the output; choose another output "
                       "name or ask to overwrite (--overwrite).")

    prog(0.0, "Loading the model")
    model, card, model_path = load_model(req.model, req.models_dir)
    profile, reason = sensors.choose(req.image, req.sensor)
    prog.stage(0, 0.02)(1.0, f"Sensor: {profile.title} ({reason})")
    with open_input(req.image, profile, working_gsd=req.working_gsd, mask=req.mask, extent=req.extent) as inp:
        prog.stage(0.02, 0.05)(0.0, "Computing normalisation statistics")
        stats = resolve_stats(req.stats, inp, card.stats)
        adapt_span = (0.05, 0.05)
        if req.adapt:
            from ..training.adapt import quick_adapt_for_mapping

            adapt_span = (0.05, 0.45)
            model, card = quick_adapt_for_mapping(model, card, inp, stats, req.adapt, prog.stage(*adapt_span),
                                                  model_path=str(model_path))  # finds its source memory
        backend_name = req.backend
        if backend_name == "auto" and req.stitch == "centre-crop":
            backend_name = "torch"  # the reproduction mode runs what the reference ran
        if backend_name == "auto" and req.adapt and inp.width * inp.height < ADAPTED_ONNX_MIN_PIXELS:
            backend_name = "torch"  # exporting freshly adapted weights to ONNX costs more than it saves here
        prog(adapt_span[1], "Preparing the model to run (a model's first use on the CPU exports it to ONNX "
                            "once, 10-60 s)")
        backend = make_backend(model, card, model_path if not req.adapt else None,
                               backend=backend_name, device=req.device)
        from ..models import input_multiple

        settings = default_settings(req, backend, input_multiple(model), inp.width, inp.height,
                                    card.architecture)
        files = AtomicFiles()
        cw = fw = None
        try:
            class_tmp = files.temp_for(out)
            cw = class_writer(class_tmp, inp.width, inp.height, inp.geotransform, inp.projection)
            if "confidence raster" in dests:
                fw = confidence_writer(files.temp_for(dests["confidence raster"]), inp.width, inp.height,
                                       inp.geotransform, inp.projection)
            counter = AreaCounter(inp.geotransform, inp.projection)

            def sink(x, y, block, conf):
                cw.write(x, y, block)
                counter.add(y, block)
                if fw is not None and conf is not None:
                    fw.write(x, y, conf)

            predict(inp, backend, stats, settings, sink, prog.stage(adapt_span[1], 0.95))
            rows = counter.table()
            if sum(r["pixels"] for r in rows) == 0:
                raise FbpError(f"{_describe(req.image)} has no valid pixels to map (all nodata or masked); "
                               "check its nodata value, the mask and the extent.")
            prog.stage(0.95, 1.0)(0.0, "Writing overviews and styles")
            metadata = _metadata(req, card, model_path, profile, reason, stats, backend, settings)
            cw.finish("MODE", metadata)
            if fw is not None:
                fw.finish("AVERAGE", metadata)
            files.write_text(qml_path, classes.qml())
            if areas_json is not None:
                write_area_tables(rows, dests["area table"], str(out), files)
            if "quicklook" in dests:
                ql = files.temp_for(dests["quicklook"])
                quicklook_png(class_tmp, ql)
            prog.check()
            files.commit()
        except BaseException:
            for writer in (cw, fw):
                if writer is not None:
                    writer.close()
            files.discard()
            raise
        prog(1.0, "Done")
        return MapResult(
            output=str(out), qml=str(qml_path),
            confidence=str(dests["confidence raster"]) if "confidence raster" in dests else None,
            areas_csv=str(dests["area table"]) if "area table" in dests else None,
            areas_json=str(areas_json) if areas_json else None,
            quicklook=str(dests["quicklook"]) if "quicklook" in dests else None,
            sensor=profile.name, sensor_reason=reason, stats=stats, backend=backend.name,
            device=backend.device, device_reason=backend.reason, areas=rows,
            width=inp.width, height=inp.height, seconds=time.monotonic() - t0,
        )


GDAL_CACHE_MB = 256
# Adapted weights exist only in memory, so onnxruntime would need a fresh ONNX export (~20-50 s on 2 cores);
# torch on the CPU runs the compact model at ~2 Mpx/s and onnxruntime at ~5-7, so the export pays for itself
# only beyond ~100 Mpx (bench/README.md).
ADAPTED_ONNX_MIN_PIXELS = 100_000_000


def _bound_gdal_cache() -> None:
    """GDAL's block cache defaults to 5 % of RAM (1.2 GB on a 24 GB machine) and fills with the output's
    dirty blocks on wide rasters; 256 MB is plenty for row-band writing. A user's GDAL_CACHEMAX wins."""
    import os

    from osgeo import gdal

    if "GDAL_CACHEMAX" not in os.environ and gdal.GetCacheMax() > GDAL_CACHE_MB * 2**20:
        gdal.SetCacheMax(GDAL_CACHE_MB * 2**20)


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
        "FBP_STATS": json.dumps(stats.to_dict()),
        "FBP_STITCH": f"{settings.stitch} window={settings.window}x{settings.rows} overlap={settings.overlap}",
        "FBP_BACKEND": f"{backend.name} on {backend.device}",
        "FBP_CLASSES": "Five-Billion-Pixels 24 classes; 0 = nodata",
    }
