"""map_many on a Dask LocalCluster: the same mosaic as in-process, even when a worker dies mid-job."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from fbp_landcover.engine.many import ManyJob, map_many
from fbp_landcover.engine.many.cluster import run_scene
from fbp_landcover.engine.mapping import MapRequest
from tests.models import tiny_checkpoint
from tests.rasters import random_scene, write_raster

pytest.importorskip("distributed")
gdal.UseExceptions()


def kill_worker_once(request: MapRequest) -> dict:
    """The scene task, except that scene s1 kills its worker process the first time (marker file absent)."""
    marker = Path(request.output).parents[1] / "killed-once.marker"
    if Path(request.image).name == "s1.tif" and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(1)
    return run_scene(request)


def read(path) -> np.ndarray:
    ds = gdal.Open(str(path))
    return ds.GetRasterBand(1).ReadAsArray()


@pytest.mark.slow
def test_two_workers_give_the_in_process_mosaic_despite_a_killed_worker(tmp_path):
    model = str(tiny_checkpoint(tmp_path / "tiny.fbpmodel"))
    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(4):
        write_raster(folder / f"s{k}.tif", random_scene(48, 64, seed=20 + k),
                     geotransform=(500000.0 + 160 * k, 4.0, 0.0, 4000000.0 - 60 * k, 0.0, -4.0))
    scene = MapRequest(image="", output="", model=model, sensor="rgbn")
    local = map_many(ManyJob(inputs=[str(folder)], output_dir=str(tmp_path / "local"), request=scene))
    dask = map_many(ManyJob(inputs=[str(folder)], output_dir=str(tmp_path / "dask"), request=scene, workers=2,
                            run_scene=kill_worker_once))
    assert (tmp_path / "dask" / "killed-once.marker").exists()  # a worker really died
    assert dask.failed == [] and dask.mapped == 4
    man = json.loads(Path(dask.manifest).read_text())
    assert [s["state"] for s in man["scenes"]] == ["done"] * 4
    assert len({s["worker"] for s in man["scenes"]}) >= 2  # spread over more than one process
    assert np.array_equal(read(dask.mosaic), read(local.mosaic))
    assert np.array_equal(read(dask.mosaic_confidence), read(local.mosaic_confidence))
    assert json.loads(Path(dask.areas_json).read_text())["classes"] == \
        json.loads(Path(local.areas_json).read_text())["classes"]
