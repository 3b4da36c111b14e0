"""map-many and map under a hostile user (issue 14): damaged scenes fail alone, scene names never collide,
one job per folder, and a stopped or killed run leaves nothing half-written for the next one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from fbp_landcover.engine.errors import CancelledError, FbpError
from fbp_landcover.engine.io.lock import LOCK_NAME, FolderLock
from fbp_landcover.engine.many import ManyJob, map_many
from fbp_landcover.engine.many.job import _names
from fbp_landcover.engine.mapping import MapRequest
from tests.models import tiny_checkpoint
from tests.rasters import file_digest, random_scene, write_raster

gdal.UseExceptions()
BIG = 1600  # pixels a side: a run of several seconds, long enough to be stopped mid-way
CLI = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "fbp-landcover")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return str(tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.fbpmodel"))


def job(inputs, out, model, **kw) -> ManyJob:
    return ManyJob(inputs=[str(i) for i in inputs], output_dir=str(out),
                   request=MapRequest(image="", output="", model=model, sensor="rgbn"), **kw)


def partials(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".partial" in p.name)


def read(path) -> np.ndarray:
    return gdal.Open(str(path)).GetRasterBand(1).ReadAsArray()


def test_scene_names_never_collide():
    names = _names(["/d1/x.tif", "/d2/x.tif", "/d3/x_2.tif", "/d4/x_confidence.tif", "/d5/X.TIF",
                    "/d2/x.tiff"])
    files = [f for n in names for f in (f"{n}.tif".lower(), f"{n}_confidence.tif".lower())]
    assert len(set(files)) == len(files)
    assert names == ["x", "d2_x", "x_2", "d4_x_confidence", "d5_X", "d2_x_2"]


def test_damaged_scenes_fail_alone_and_the_mosaic_is_made_of_the_good_ones(model, tmp_path):
    """A truncated GeoTIFF (GDAL opens it, reading fails), a VRT whose source is gone, and two good scenes
    with the same file name in different folders, plus one named like another's confidence layer."""
    for d in ("d1", "d2", "d3"):
        (tmp_path / d).mkdir()
    good = [write_raster(tmp_path / "d1" / "x.tif", random_scene(40, 48, seed=1)),
            write_raster(tmp_path / "d2" / "x.tif", random_scene(40, 48, seed=2)),
            write_raster(tmp_path / "d3" / "x_confidence.tif", random_scene(40, 48, seed=3))]
    truncated = write_raster(tmp_path / "d3" / "truncated.tif", random_scene(300, 300, seed=4))
    with open(truncated, "r+b") as handle:
        handle.truncate(truncated.stat().st_size // 2)
    gone = write_raster(tmp_path / "gone.tif", random_scene(40, 48, seed=5))
    gdal.BuildVRT(str(tmp_path / "d3" / "orphan.vrt"), [str(gone)]).FlushCache()
    gone.unlink()
    digests = {p: file_digest(p) for p in [*good, truncated]}

    res = map_many(job([*good, truncated, tmp_path / "d3" / "orphan.vrt"], tmp_path / "out", model))
    failed = {Path(p).name: e for p, e in res.failed}
    assert sorted(failed) == ["orphan.vrt", "truncated.tif"]
    assert str(truncated) in failed["truncated.tif"]
    assert res.mosaic is not None and res.mapped == 3
    scenes = {s["name"]: s for s in res.scenes}
    names = ("x", "d2_x", "d3_x_confidence")  # x_confidence.tif is x's confidence layer: not a scene's name
    assert {n for n, s in scenes.items() if s["state"] == "done"} == set(names)
    for src, name in zip(good, names, strict=True):  # each scene's map is its own input's
        assert scenes[name]["input"] == str(src)
        assert gdal.Open(scenes[name]["classes"]).GetMetadataItem("FBP_SOURCE_IMAGE") == str(src)
    assert sorted(p.name for p in (tmp_path / "out" / "scenes").iterdir()) == sorted(
        [f"{n}{s}" for n in names for s in (".tif", "_confidence.tif", ".tif.aux.xml", ".qml")])
    assert all(file_digest(p) == d for p, d in digests.items())
    assert partials(tmp_path / "out") == []

    again = map_many(job([*good, truncated, tmp_path / "d3" / "orphan.vrt"], tmp_path / "out", model))
    assert again.skipped == 3 and len(again.failed) == 2 and again.mosaic is not None  # no abort on re-runs


def test_cli_exit_1_names_the_bad_scene(model, tmp_path):
    write_raster(tmp_path / "good.tif", random_scene(40, 48, seed=1))
    bad = write_raster(tmp_path / "bad.tif", random_scene(300, 300, seed=2))
    with open(bad, "r+b") as handle:
        handle.truncate(bad.stat().st_size // 2)
    run = subprocess.run([CLI, "--quiet", "map-many", str(tmp_path / "good.tif"), str(bad), "--model", model,
                          "-o", str(tmp_path / "out"), "--sensor", "rgbn"], capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    assert f"FAILED {bad}: " in run.stdout and "Mosaic:" in run.stdout
    assert (tmp_path / "out" / "mosaic.tif").is_file()


def test_a_second_job_on_a_locked_folder_says_who_holds_it(model, tmp_path):
    scene = write_raster(tmp_path / "a.tif", random_scene(40, 48))
    out = tmp_path / "out"
    out.mkdir()
    with FolderLock(out):
        with pytest.raises(FbpError, match=rf"The map-many output folder {out} is in use by another job "
                                           rf"\(process {os.getpid()} on .+, started .+\); wait for it"):
            map_many(job([scene], out, model))
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]
    res = map_many(job([scene], out, model))  # released: the next job runs
    assert res.mosaic is not None


def test_a_lock_left_by_a_killed_job_is_taken_over(model, tmp_path):
    scene = write_raster(tmp_path / "a.tif", random_scene(40, 48))
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    (out / LOCK_NAME).write_text(json.dumps({"pid": int(dead), "host": "here", "started": "then"}))
    messages = []
    res = map_many(job([scene], out, model), lambda f, m: messages.append(m))
    assert res.mosaic is not None
    assert f"Taking over the folder from a job that stopped without finishing (process {dead} on here)" \
        in messages
    assert (out / LOCK_NAME).read_text() == ""  # released at the end


def test_two_concurrent_jobs_one_refused_with_the_holder(model, tmp_path):
    """Two map-many processes on one folder, started together: one maps, the other says who holds it."""
    scenes = [write_raster(tmp_path / f"s{i}.tif", random_scene(BIG, BIG, seed=i)) for i in range(1)]
    out = tmp_path / "out"
    cmd = [CLI, "--quiet", "map-many", *map(str, scenes), "--model", model, "-o", str(out),
           "--sensor", "rgbn", "--window", "128", "--batch-size", "1"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ((out / LOCK_NAME).is_file() and (out / LOCK_NAME).read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    second = subprocess.run(cmd, capture_output=True, text=True)
    out1, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1
    assert second.returncode == 1, second.stderr
    assert f"is in use by another job (process {first.pid} on " in second.stderr
    man = json.loads((out / "manifest.json").read_text())
    assert [s["state"] for s in man["scenes"]] == ["done"]


def _wait_for_partial(folder: Path, proc: subprocess.Popen, prefix: str = ".", timeout: float = 120) -> None:
    """Wait until the run writes a partial file whose name starts with ``prefix`` under ``folder``."""
    deadline = time.monotonic() + timeout
    while not [p for p in partials(folder) if Path(p).name.startswith(prefix)]:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no partial file appeared"
        time.sleep(0.05)
    time.sleep(0.3)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_or_killed_map_leaves_no_partials_after_a_rerun(model, tmp_path, sig):
    src = write_raster(tmp_path / "big.tif", random_scene(BIG, BIG))
    out = tmp_path / "out"
    out.mkdir()
    cmd = [CLI, "--quiet", "map", str(src), "--sensor", "rgbn", "--model", model,
           "-o", str(out / "m.tif"), "--confidence", str(out / "c.tif"),
           "--window", "128", "--batch-size", "1", "--backend", "torch"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_partial(out, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGTERM:  # handled like Ctrl-C: cancelled, everything half-written removed
        assert proc.returncode == 130 and "cancelled" in err, err
        assert sorted(p.name for p in out.iterdir()) == []
    else:  # nothing can run on SIGKILL: the partials stay until the next run of the same outputs
        assert proc.returncode == -signal.SIGKILL and partials(out)
    rerun = subprocess.run(cmd[:-6], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert partials(out) == [] and (out / "m.tif").is_file()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_or_killed_job_resumes_without_partials(model, tmp_path, sig):
    scenes = [write_raster(tmp_path / f"s{i}.tif", random_scene(40, 48, seed=i)) for i in range(2)]
    scenes.append(write_raster(tmp_path / "s9.tif", random_scene(BIG, BIG, seed=9)))
    out = tmp_path / "out"
    cmd = [CLI, "--quiet", "map-many", *map(str, scenes), "--model", model, "-o", str(out),
           "--sensor", "rgbn", "--window", "128", "--batch-size", "1", "--backend", "torch"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_partial(out, proc, prefix=".s9.tif.")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert proc.returncode == 130, err
        assert "the 2 finished scene(s) (s0, s1) are kept in" in err and "resume" in err, err
        assert partials(out) == []
    rerun = subprocess.run(cmd, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "Scenes: 1 mapped, 2 already done, 0 failed" in rerun.stdout
    assert partials(out) == []


def test_cancelling_a_job_says_which_scenes_were_kept(model, tmp_path):
    scenes = [write_raster(tmp_path / f"s{i}.tif", random_scene(40, 48, seed=i)) for i in range(3)]
    seen = []
    with pytest.raises(CancelledError, match=r"the 2 finished scene\(s\) \(s0, s1\) are kept in "):
        map_many(job(scenes, tmp_path / "out", model), lambda f, m: seen.append(m),
                 lambda: any(m.startswith("2 of 3 scenes mapped") for m in seen))
