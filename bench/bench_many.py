"""Country-scale mapping throughput: a job of N generated scenes, in-process against a local Dask cluster.

    .venv/bin/python bench/bench_many.py [--scenes 16] [--size 512] [--workers 2] [--model tiny|compact]

Printed: mode, scenes, Mpx, wall seconds of the scene phase, Mpx/s, mosaic seconds, manifest writes and
the share of the run spent writing the manifest; plus the cost of loading the model once (map_landcover
loads it per scene). The scenes are random-weight-model maps of generated 4-band rasters laid out in a
row with overlaps; both runs must give the same mosaic pixels (checked).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from osgeo import gdal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

gdal.UseExceptions()

COMPACT = {"smp_arch": "Unet", "encoder": "mobilenet_v2",
           "arch_kwargs": {"decoder_channels": [128, 64, 48, 32, 16]}}


def make_scenes(folder: Path, n: int, size: int) -> None:
    from tests.rasters import random_scene, write_raster

    folder.mkdir()
    step = size * 4 * 0.9  # 10 % overlap between neighbours, 4 m pixels
    for k in range(n):
        write_raster(folder / f"scene{k:02d}.tif", random_scene(size, size, seed=k),
                     geotransform=(500000.0 + (k % 4) * step, 4.0, 0.0, 4000000.0 - (k // 4) * step,
                                   0.0, -4.0))


def read(path: str) -> np.ndarray:
    ds = gdal.Open(path)
    return ds.GetRasterBand(1).ReadAsArray()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", type=int, default=16)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--model", choices=["tiny", "compact"], default="tiny")
    args = ap.parse_args()

    from fbp_landcover.engine.many import ManyJob, map_many
    from fbp_landcover.engine.mapping import MapRequest
    from fbp_landcover.engine.models.loading import load_model
    from tests.models import tiny_checkpoint

    with tempfile.TemporaryDirectory(prefix="bench_many_") as tmp:
        root = Path(tmp)
        overrides = {} if args.model == "tiny" else dict(COMPACT)
        model = str(tiny_checkpoint(root / f"{args.model}.fbpmodel", **overrides))
        make_scenes(root / "in", args.scenes, args.size)
        load_model(model)  # the first load also imports torch/smp/timm
        t0 = time.perf_counter()
        load_model(model)
        load_s = time.perf_counter() - t0
        from fbp_landcover.engine.many.cluster import open_client

        t0 = time.perf_counter()
        with open_client(args.workers):
            pass
        start_s = time.perf_counter() - t0
        # warm the ONNX cache once so neither mode pays the export
        scene = MapRequest(image="", output="", model=model, sensor="rgbn")
        map_many(ManyJob(inputs=[str(root / "in" / "scene00.tif")], output_dir=str(root / "warm"),
                         request=scene))
        rows, mosaics = [], {}
        for mode, workers in (("in-process", None), (f"LocalCluster x{args.workers}", args.workers)):
            t0 = time.perf_counter()
            res = map_many(ManyJob(inputs=[str(root / "in")], output_dir=str(root / mode.replace(" ", "_")),
                                   request=scene, workers=workers))
            total = time.perf_counter() - t0
            assert not res.failed, res.failed
            mosaics[mode] = read(res.mosaic)
            rate = res.megapixels / res.scene_seconds
            rows.append((mode, len(res.scenes), res.megapixels, res.scene_seconds, rate,
                         total - res.scene_seconds, total, res.manifest_seconds))
        same = np.array_equal(*mosaics.values())

    print(f"\n{args.scenes} scenes of {args.size}x{args.size} px, model {args.model}, "
          f"{__import__('os').cpu_count()} CPU cores")
    print(f"{'mode':<18}{'scenes':>7}{'Mpx':>8}{'scene s':>9}{'Mpx/s':>8}{'mosaic s':>10}{'total s':>9}"
          f"{'manifest s':>12}{'manifest %':>12}")
    for mode, n, mpx, ss, rate, ms, tot, man in rows:
        print(f"{mode:<18}{n:>7}{mpx:>8.2f}{ss:>9.1f}{rate:>8.3f}{ms:>10.1f}{tot:>9.1f}{man:>12.4f}"
              f"{100 * man / tot:>11.3f}%")
    print(f"identical mosaic pixels: {same}")
    print(f"model load (once per scene inside map_landcover, warm): {load_s:.3f} s")
    print(f"LocalCluster start and stop alone (included in its scene s): {start_s:.1f} s")
    speedup = rows[1][4] / rows[0][4]
    print(f"speed-up with {args.workers} workers: {speedup:.2f}x; scenes are independent, "
          "so N machines give about N x the per-machine rate for the scene phase while scenes >= workers; "
          f"the mosaic is one client-side pass ({rows[0][5]:.1f} s here) that does not scale out.")


if __name__ == "__main__":
    main()
