"""map_many: many scenes -> per-scene maps (map_landcover) -> one mosaic, areas and zonal statistics.

Resumable: the manifest (manifest.py) records every scene's state; a re-run maps only scenes that are
new, changed, failed or unfinished. A failed scene is recorded with its error and the others go on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from osgeo import gdal

from .. import SOFTWARE, classes
from ..errors import CancelledError, FbpError, explain
from ..io.atomic import AtomicFiles, remove_partials_in
from ..io.lock import FolderLock
from ..mapping import MapRequest
from ..products.areas import write_area_tables
from ..progress import CancelFn, Progress, ProgressFn
from ..training.config import AdaptOptions
from . import cluster
from . import manifest as mf
from .mosaic import RULES, choose_grid, place, priority, scene_date, write_mosaic

gdal.UseExceptions()

RASTER_PATTERNS = ("*.tif", "*.tiff", "*.jp2", "*.vrt")
SCENE_PHASE = 0.9  # share of the progress bar for the scenes; the rest is the mosaic


# The MapRequest fields a scene's maps depend on besides its input, its sensor and the model: a change of any
# of them maps the scene again on a re-run (device and backend change only how fast).
SCENE_KEY_FIELDS = ("adapt", "stats", "window", "batch_size", "working_gsd")


@dataclass
class ManyJob:
    inputs: list[str]                      # raster files and/or folders (*.tif *.tiff *.jp2 *.vrt in them)
    output_dir: str
    request: MapRequest                    # every scene's request (model, sensor, stats, adapt, device, ...);
                                           # its image and outputs are set per scene
    sensors: dict[str, str] = field(default_factory=dict)  # input path or file name -> sensor, else request's
    crs: str | None = None                 # mosaic CRS (default: the first scene's)
    resolution: float | None = None        # mosaic pixel size in CRS units (default: the finest)
    overlap: str = "confidence"            # confidence | recent | first
    zones: str | None = None               # polygon layer for per-zone areas
    zone_field: str | None = None
    workers: int | None = None             # > 1: a local Dask cluster of that many processes
    scheduler: str | None = None           # address of an existing Dask scheduler
    overwrite: bool = False                # map every scene again, ignoring the manifest
    run_scene: Callable[[MapRequest], dict] | None = None  # the per-scene task (default cluster.run_scene)


@dataclass
class ManyResult:
    output_dir: str
    manifest: str
    mosaic: str | None
    mosaic_vrt: str | None
    mosaic_confidence: str | None
    areas_csv: str | None
    areas_json: str | None
    zones_csv: str | None
    zones_json: str | None
    scenes: list[dict]
    mapped: int
    skipped: int
    failed: list[tuple[str, str]]          # (input, error)
    areas: list[dict] = field(default_factory=list)
    grid: dict = field(default_factory=dict)
    megapixels: float = 0.0                # input pixels mapped in this run
    scene_seconds: float = 0.0             # wall time of the scene phase
    manifest_seconds: float = 0.0          # time spent writing the manifest
    seconds: float = 0.0


def expand_inputs(items: list[str], exclude: Path | None = None) -> list[str]:
    """Files as given, folders globbed (sorted); duplicates and files inside ``exclude`` dropped."""
    out: list[str] = []
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir():
            found = sorted({q for pat in RASTER_PATTERNS for q in p.glob(pat)}
                           | {q for pat in RASTER_PATTERNS for q in p.glob(pat.upper())})
            if not found:
                raise FbpError(f"The input folder {p} has no *.tif, *.tiff, *.jp2 or *.vrt rasters; "
                               "give the folder that holds the scenes or list the files.")
            out.extend(str(q.absolute()) for q in found)
        elif p.exists():
            out.append(str(p.absolute()))
        else:
            raise FbpError(f"The input {p} does not exist; give existing raster files or folders.")
    if exclude is not None:
        ex = exclude.absolute()
        out = [o for o in out if ex not in Path(o).parents]
    seen: set[str] = set()
    unique = [o for o in out if not (o in seen or seen.add(o))]
    if not unique:
        raise FbpError("No input rasters were given; list raster files or a folder of them.")
    return unique


CONFIDENCE_SUFFIX = "_confidence"


def scene_files(name: str) -> dict[str, str]:
    """The file names a scene's outputs take in scenes/."""
    return {"classes": f"{name}.tif", "confidence": f"{name}{CONFIDENCE_SUFFIX}.tif"}


def _names(paths: list[str]) -> list[str]:
    """Output stems that never collide, from the inputs' paths: the file stem; for a stem already taken (two
    inputs named alike in different folders, or a stem that another scene's files already use, such as
    x_confidence beside x) the parent folder's name is put before it, then _2, _3… Every scene's files differ
    from every other's, compared case-insensitively (some disks ignore case)."""
    taken: set[str] = set()
    out = []
    for p in paths:
        path = Path(p)
        candidates = [path.stem, f"{path.parent.name}_{path.stem}"]
        candidates += [f"{candidates[-1]}_{n}" for n in range(2, len(paths) + 2)]
        for name in candidates:
            files = {f.lower() for f in scene_files(name).values()}
            if not files & taken:
                break
        taken |= files
        out.append(name)
    return out


def _pixels(path: str) -> int:
    try:
        ds = gdal.Open(path)
        return ds.RasterXSize * ds.RasterYSize
    except RuntimeError:
        return 0


def _output_folder(job: ManyJob) -> Path:
    """The job's output folder, made when missing (its lock lives in it)."""
    out = Path(job.output_dir).expanduser().absolute()
    if out.exists() and not out.is_dir():
        raise FbpError(f"The output folder {out} is a file; give a folder (it is created if missing).")
    if not out.parent.is_dir():
        raise FbpError(f"The parent folder of {out} does not exist; "
                       "create it or choose another output folder.")
    out.mkdir(exist_ok=True)
    return out


def _prepare_folder(job: ManyJob, out: Path) -> tuple[Path, Path]:
    """With the folder locked: refuse a folder of other files."""
    man = out / mf.MANIFEST_NAME
    if not man.exists() and not job.overwrite and any(p for p in out.iterdir() if not p.name.startswith(".")):
        raise FbpError(f"The output folder {out} holds files but no {mf.MANIFEST_NAME} of a map-many job; "
                       "choose an empty or new folder, or ask to overwrite (--overwrite).")
    return out, man


def _setting(request: MapRequest, name: str):
    """A MapRequest field as the manifest records it (quick adaptation: the options that were asked for)."""
    value = getattr(request, name)
    return value.changed() if isinstance(value, AdaptOptions) else value


def _scene_settings(job: ManyJob, sensor: str) -> dict:
    return {"sensor": sensor, **{name: _setting(job.request, name) for name in SCENE_KEY_FIELDS}}


def _scene_request(job: ManyJob, entry: mf.SceneEntry) -> MapRequest:
    """The job's request for one scene: its input, sensor and outputs (the mosaic has the area tables)."""
    return replace(job.request, image=entry.input, output=entry.outputs["classes"],
                   confidence=entry.outputs["confidence"], sensor=entry.sensor, areas=None, quicklook=None,
                   overwrite=True)


def scene_error(exc: BaseException, path: str) -> str:
    """The sentence recorded for a scene that failed with ``exc``."""
    if isinstance(exc, FbpError):
        return str(exc)
    sentence = explain(exc)
    if sentence:
        return f"{path} could not be mapped: {sentence}"
    return f"{path} could not be mapped ({type(exc).__name__}: {exc})."


def _record(entry: mf.SceneEntry, res: dict) -> None:
    entry.seconds = round(res.get("seconds", 0.0), 3)
    entry.worker = res.get("worker", "")
    entry.finished = time.strftime("%Y-%m-%dT%H:%M:%S")
    if res.get("ok"):
        entry.state, entry.error = mf.DONE, ""
        entry.width, entry.height = res.get("width", 0), res.get("height", 0)
        entry.device = res.get("device", "")
    else:
        entry.state, entry.error = mf.FAILED, res.get("error", "unknown error")


def map_many(job: ManyJob, progress: ProgressFn | None = None,
             is_cancelled: CancelFn | None = None) -> ManyResult:
    """Map every input scene, then compose one mosaic with areas (and zonal statistics)."""
    t0 = time.monotonic()
    prog = Progress(progress, is_cancelled)
    if job.overlap not in RULES:
        raise FbpError(f"Unknown overlap rule {job.overlap!r}; choose one of {', '.join(RULES)}.")
    out = _output_folder(job)
    with FolderLock(out, "map-many output folder") as lock:
        out, man_path = _prepare_folder(job, out)
        if lock.taken_over:
            prog(0.0, f"Taking over the folder from a job that stopped without finishing "
                      f"(process {lock.taken_over.get('pid')} on {lock.taken_over.get('host')})")
        removed = remove_partials_in([out, out / "scenes", out / "mosaic_parts"])
        if removed:
            prog(0.0, f"Removed {len(removed)} half-written file(s) left by a job that was stopped")
        return _map_many(job, prog, out, man_path, t0)


def _map_many(job: ManyJob, prog: Progress, out: Path, man_path: Path, t0: float) -> ManyResult:
    """map_many with the folder locked."""
    paths = expand_inputs(job.inputs, exclude=out)
    man = _manifest(job, out, man_path, paths)
    (out / "scenes").mkdir(exist_ok=True)
    (out / "mosaic_parts").mkdir(exist_ok=True)
    todo = [s for s in man.scenes if s.state != mf.DONE]
    skipped = len(man.scenes) - len(todo)
    man.save()
    prog(0.0, f"{len(man.scenes)} scenes: {skipped} already done, {len(todo)} to map")

    t_scenes = time.monotonic()
    task = job.run_scene or cluster.run_scene
    try:
        with cluster.open_client(job.workers, job.scheduler) as client:
            if client is None:
                _run_local(job, man, todo, task, prog)
            else:
                _run_dask(job, man, todo, task, prog, client)
    except (KeyboardInterrupt, CancelledError):
        raise CancelledError(_cancelled(man, out)) from None
    finally:
        for s in man.scenes:  # whatever stopped us, nothing stays "running"
            if s.state == mf.RUNNING:
                s.state = mf.PENDING
        man.save()
    scene_seconds = time.monotonic() - t_scenes

    done = [s for s in man.scenes if s.state == mf.DONE]
    failed = [(s.input, s.error) for s in man.scenes if s.state == mf.FAILED]
    result = ManyResult(output_dir=str(out), manifest=str(man_path), mosaic=None, mosaic_vrt=None,
                        mosaic_confidence=None, areas_csv=None, areas_json=None, zones_csv=None,
                        zones_json=None,
                        scenes=[], mapped=len(todo) - len(failed), skipped=skipped, failed=failed,
                        megapixels=sum(s.pixels for s in todo if s.state == mf.DONE) / 1e6,
                        scene_seconds=scene_seconds)
    if done:
        try:
            _mosaic(job, man, done, out, result, prog.stage(SCENE_PHASE, 1.0))
        except (KeyboardInterrupt, CancelledError):
            raise CancelledError(_cancelled(man, out)) from None
    man.save()
    result.scenes = [dict(name=s.name, input=s.input, state=s.state, error=s.error, seconds=s.seconds,
                          classes=s.outputs["classes"]) for s in man.scenes]
    result.manifest_seconds = man.write_seconds
    result.seconds = time.monotonic() - t0
    prog(1.0, f"Done: {len(done)} scenes in the mosaic, {len(failed)} failed")
    return result


def _cancelled(man: mf.Manifest, out: Path) -> str:
    """What a cancelled job kept: the finished scenes (the manifest records them; a re-run resumes)."""
    kept = [s.name for s in man.scenes if s.state == mf.DONE]
    if not kept:
        return "Cancelled; no scene was finished, so no output was written (run again to start the job)."
    names = ", ".join(kept[:5]) + (f" and {len(kept) - 5} more" if len(kept) > 5 else "")
    return (f"Cancelled; the {len(kept)} finished scene(s) ({names}) are kept in {out / 'scenes'}, without "
            "a mosaic; run the same command again to resume from there.")


def _manifest(job: ManyJob, out: Path, man_path: Path, paths: list[str]) -> mf.Manifest:
    """The job's manifest: its settings and model, and a scene entry per input (an earlier run's entry when
    that scene is done with the same key and outputs, so it is kept)."""
    from ..models.card import file_sha256
    from ..models.registry import resolve

    model_path = resolve(job.request.model, job.request.models_dir)
    model_sha = file_sha256(model_path)
    previous = {} if job.overwrite else mf.load_previous(man_path)
    settings = {"software": SOFTWARE, "sensor": job.request.sensor, "sensors": job.sensors,
                **{name: _setting(job.request, name) for name in (*SCENE_KEY_FIELDS, "device", "backend")},
                "crs": job.crs, "resolution": job.resolution, "overlap": job.overlap, "zones": job.zones,
                "zone_field": job.zone_field}
    man = mf.Manifest(man_path, settings, {"spec": job.request.model, "path": str(model_path),
                                           "sha256": model_sha})
    for path, name in zip(paths, _names(paths), strict=True):
        sensor = job.sensors.get(path) or job.sensors.get(Path(path).name) or job.request.sensor
        fp = mf.fingerprint(path)
        key = mf.scene_key(fp, _scene_settings(job, sensor), model_sha)
        outputs = {k: str(out / "scenes" / f) for k, f in scene_files(name).items()}
        date, date_source = scene_date(path)
        old = previous.get(path)
        if mf.is_reusable(old, key) and old.outputs == outputs:
            old.date, old.date_source, old.name = date, date_source, name
            man.scenes.append(old)
        else:
            man.scenes.append(mf.SceneEntry(input=path, name=name, sensor=sensor, key=key, fingerprint=fp,
                                            outputs=outputs, date=date, date_source=date_source,
                                            pixels=_pixels(path)))
    return man


def _scene_message(entry: mf.SceneEntry, k: int, n: int, message: str) -> str:
    return f"Scene {k} of {n} ({entry.name}): {message.split(' (about ')[0]}"


def _run_local(job: ManyJob, man: mf.Manifest, todo: list[mf.SceneEntry], task, prog: Progress) -> None:
    total = max(1, sum(max(s.pixels, 1) for s in todo))
    done_px = 0
    for k, entry in enumerate(todo, start=1):
        prog.check()
        entry.state, entry.attempts = mf.RUNNING, entry.attempts + 1
        man.save()
        px = max(entry.pixels, 1)

        def sub(f: float, m: str, _e=entry, _k=k, _px=px, _d=done_px) -> None:
            prog(SCENE_PHASE * (_d + f * _px) / total, _scene_message(_e, _k, len(todo), m))

        try:
            if task is cluster.run_scene:
                res = task(_scene_request(job, entry), sub, lambda: prog.cancelled)
            else:
                res = task(_scene_request(job, entry))
        except (CancelledError, KeyboardInterrupt):
            raise
        except Exception as exc:  # a damaged file, a GDAL or OS error, anything: this scene's failure only
            res = {"ok": False, "error": scene_error(exc, entry.input)}
        _record(entry, res)
        man.save()
        done_px += px
        prog(SCENE_PHASE * done_px / total, f"{k} of {len(todo)} scenes mapped, "
                                            f"{done_px / 1e6:.2f} of {total / 1e6:.2f} Mpx")


def _run_dask(job: ManyJob, man: mf.Manifest, todo: list[mf.SceneEntry], task, prog: Progress,
              client) -> None:
    total = max(1, sum(max(s.pixels, 1) for s in todo))
    futures = {}
    for entry in todo:
        fut = client.submit(task, _scene_request(job, entry), key=f"fbp-scene-{entry.name}-{entry.key[:12]}",
                            retries=cluster.RETRIES, pure=False)
        futures[fut] = entry
        entry.state, entry.attempts = mf.RUNNING, entry.attempts + 1
    man.save()
    done_px, n_done = 0, 0
    try:
        while futures:
            if prog.cancelled:
                raise CancelledError("Cancelled by the user; "
                                     "finished scenes are kept and the job can be resumed.")
            finished = [f for f in futures if f.done()]
            if not finished:
                time.sleep(0.2)
                continue
            for fut in finished:
                entry = futures.pop(fut)
                try:
                    res = fut.result()
                except Exception as exc:  # a worker crash or any other error: this scene only
                    res = {"ok": False, "error": scene_error(exc, entry.input)}
                _record(entry, res)
                man.save()
                done_px += max(entry.pixels, 1)
                n_done += 1
                prog(SCENE_PHASE * done_px / total, f"{n_done} of {len(todo)} scenes mapped, "
                                                    f"{done_px / 1e6:.2f} of {total / 1e6:.2f} Mpx")
    finally:
        if futures:
            client.cancel(list(futures))


def _mosaic(job: ManyJob, man: mf.Manifest, done: list[mf.SceneEntry], out: Path, result: ManyResult,
            prog: Progress) -> None:
    prog(0.0, "Choosing the mosaic grid")
    grid = choose_grid([s.outputs["classes"] for s in done], job.crs, job.resolution)
    order = priority([s.date for s in done], job.overlap)
    parts = []
    for i in order:
        s = done[i]
        part = place(grid, s.outputs["classes"], s.outputs["confidence"], out / "mosaic_parts", s.name)
        if part is not None:
            parts.append(part)
    sinks = []
    zones = None
    if job.zones:
        from .zones import ZoneCounter

        zones = ZoneCounter(grid, job.zones, job.zone_field)
        sinks.append(zones.add)
    metadata = {"FBP_SOFTWARE": SOFTWARE, "FBP_OVERLAP_RULE": job.overlap,
                "FBP_SCENES": json.dumps([done[i].input for i in order]), "FBP_MODEL": man.model["path"],
                "FBP_CLASSES": "Five-Billion-Pixels 24 classes; 0 = nodata"}
    finals, counter = write_mosaic(grid, parts, job.overlap, out, metadata, sinks, prog.stage(0.02, 0.97))
    rows = counter.table()
    files = AtomicFiles()
    files.write_text(out / "mosaic.qml", classes.qml())
    areas_json = write_area_tables(rows, out / "areas.csv", finals["classes"], files)
    if zones is not None:
        from .zones import zones_csv, zones_json

        zrows = zones.rows()
        files.write_text(out / "zones.csv", zones_csv(zrows))
        files.write_text(out / "zones.json", zones_json(zrows, zones.source, finals["classes"]))
        result.zones_csv, result.zones_json = str(out / "zones.csv"), str(out / "zones.json")
    files.commit()
    result.mosaic, result.mosaic_vrt = finals["classes"], finals["vrt"]
    result.mosaic_confidence = finals.get("confidence")
    result.areas_csv, result.areas_json, result.areas = str(out / "areas.csv"), str(areas_json), rows
    result.grid = {"crs_wkt": grid.projection, "geotransform": list(grid.geotransform), "width": grid.width,
                   "height": grid.height}
    man.mosaic = {"outputs": finals, "overlap": job.overlap, "scenes": [done[i].name for i in order],
                  "grid": result.grid, "areas_csv": result.areas_csv, "zones_csv": result.zones_csv}
