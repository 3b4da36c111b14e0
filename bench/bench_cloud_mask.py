"""Clouds in the target: does the cloud mask keep them out of normalisation and adaptation? (issue 12)

For each seed: the demo's generated cross-sensor shift (engine.demo.synthetic.domain_shift_dataset) and its
source model (engine.demo.FULL recipe); bright, soft-edged clouds are painted over a share of the target
scene and a mask raster of them is written. The target is then mapped by map_landcover four ways: the
source model and quick adaptation (the demo's recipe: DPA with the source memory), each with the cloud
mask and without it (``mask="none"``). Every map is scored (engine.assessment.evaluate) on the clear pixels
only, so the masked map's unmapped clouds do not count against it and the unmasked map's classified clouds
do not count either: what is measured is how the clouds change the map of the ground beside them.

    .venv/bin/python bench/bench_cloud_mask.py --seeds 0,1,2 [--cover 0.3] [--out /tmp/bench_cloud]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS = ("source-only", "adapted")


def paint_clouds(image: Path, truth: Path, out_dir: Path, cover: float, seed: int) -> tuple[Path, Path, Path]:
    """A cloudy copy of ``image``, the cloud mask (1 = cloud) and the truth with clouds unlabelled (0)."""
    from osgeo import gdal

    from fbp_landcover.engine.demo.synthetic.noise import smooth_noise

    src = gdal.Open(str(image))
    img = src.ReadAsArray().astype(np.float64)
    rng = np.random.default_rng(seed + 7)
    field = smooth_noise(rng, img.shape[1:], cell=48) + 0.5 * smooth_noise(rng, img.shape[1:], cell=12)
    edge = np.quantile(field, 1.0 - cover)
    alpha = np.clip((field - edge) / 0.15, 0.0, 1.0)  # soft edges: thin cloud grading to opaque
    dtype_max = np.iinfo(gdal.GetDataTypeName(src.GetRasterBand(1).DataType).lower()).max \
        if src.GetRasterBand(1).DataType != gdal.GDT_Float32 else 1.0
    bright = np.minimum(np.quantile(img, 0.995, axis=(1, 2)) * 1.4, dtype_max)  # white, near saturation
    cloudy = img * (1 - alpha) + bright[:, None, None] * alpha
    masked = alpha > 0.0
    paths = out_dir / "cloudy.tif", out_dir / "cloud_mask.tif", out_dir / "truth_clear.tif"
    drv = gdal.GetDriverByName("GTiff")
    for path, data, dtype in ((paths[0], cloudy, src.GetRasterBand(1).DataType),
                              (paths[1], masked[None].astype(np.uint8), gdal.GDT_Byte)):
        ds = drv.Create(str(path), src.RasterXSize, src.RasterYSize, data.shape[0], dtype)
        ds.SetGeoTransform(src.GetGeoTransform())
        ds.SetProjection(src.GetProjection())
        for b in range(data.shape[0]):
            ds.GetRasterBand(b + 1).WriteArray(np.round(data[b]) if dtype != gdal.GDT_Float32 else data[b])
        ds = None
    tds = gdal.Open(str(truth))
    lab = tds.ReadAsArray()
    lab[masked] = 0
    ds = drv.CreateCopy(str(paths[2]), tds)
    ds.GetRasterBand(1).WriteArray(lab)
    ds = None
    return paths


def run_seed(seed: int, root: Path, cover: float, recipe, log) -> dict:
    from fbp_landcover.engine.assessment.evaluate import evaluate
    from fbp_landcover.engine.demo import synthetic, train_with_recipe
    from fbp_landcover.engine.mapping import MapRequest, map_landcover
    from fbp_landcover.engine.training.config import AdaptOptions

    d = root / f"seed{seed}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    data = synthetic.domain_shift_dataset(d / "data", seed, n_source=recipe.n_source,
                                          source_size=recipe.source_size, target_size=recipe.target_size,
                                          control=False)
    model = d / "source.fbpmodel"
    t = time.monotonic()
    train_with_recipe(data.source_root, model, recipe, seed)
    log(f"seed {seed}: source model trained in {time.monotonic() - t:.0f} s")
    cloudy, mask, truth = paint_clouds(data.target_image, data.target_truth, d, cover, seed)
    out: dict = {"cloud_share": float(np.mean(_read(mask)))}
    for variant in VARIANTS:
        for masked in (False, True):
            t = time.monotonic()
            adapt = None if variant == "source-only" else AdaptOptions(
                iterations=recipe.adapt_iterations, lr=recipe.adapt_lr, batch_size=recipe.adapt_batch_size,
                patch=recipe.adapt_patch, method=recipe.adapt_method, seed=seed, device="cpu")
            lc = d / f"{variant}_{'mask' if masked else 'nomask'}.tif"
            res = map_landcover(MapRequest(image=str(cloudy), output=str(lc), model=str(model),
                                           sensor=data.target_sensor, device="cpu", overwrite=True,
                                           mask=str(mask) if masked else "none", adapt=adapt))
            fine, coarse = evaluate(str(lc), str(truth)), evaluate(str(lc), str(truth), collapse="coarse")
            verdict = (res.adaptation or {}).get("guard_verdict") or {}
            row = {"miou": fine["miou_present"], "oa": fine["overall_accuracy"],
                   "coarse_miou": coarse["miou_present"], "seconds": time.monotonic() - t,
                   "guard_passed": verdict.get("passed") if res.adaptation else None,
                   "share": (res.adaptation or {}).get("final_pseudo_label_share")}
            out[f"{variant}/{'mask' if masked else 'no mask'}"] = row
            log(f"seed {seed} {variant:11s} {'mask' if masked else 'no mask':7s} mIoU {row['miou']:.3f} "
                f"coarse {row['coarse_miou']:.3f} OA {row['oa']:.3f} guard {row['guard_passed']} "
                f"({row['seconds']:.0f} s)")
    return out


def _read(path: Path) -> np.ndarray:
    from osgeo import gdal

    return gdal.Open(str(path)).ReadAsArray()


def table(runs: dict[int, dict]) -> str:
    seeds = sorted(runs)
    lines = [f"seeds: {', '.join(map(str, seeds))}; cloud cover "
             f"{100 * np.mean([runs[s]['cloud_share'] for s in seeds]):.0f} % of the target", "",
             "| variant | mask | mIoU (24, clear pixels) | coarse mIoU | OA | mIoU with mask − without "
             "(per seed, points) |", "|---|---|---:|---:|---:|---|"]
    for variant in VARIANTS:
        for key in ("no mask", "mask"):
            rows = [runs[s][f"{variant}/{key}"] for s in seeds]
            change = "" if key == "no mask" else " ".join(
                f"{100 * (runs[s][f'{variant}/mask']['miou'] - runs[s][f'{variant}/no mask']['miou']):+.1f}"
                for s in seeds)
            lines.append(f"| {variant} | {key} | {np.mean([r['miou'] for r in rows]):.3f} | "
                         f"{np.mean([r['coarse_miou'] for r in rows]):.3f} | "
                         f"{np.mean([r['oa'] for r in rows]):.3f} | {change} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--cover", type=float, default=0.3, help="cloud share of the target scene")
    ap.add_argument("--out", default="/tmp/bench_cloud_mask")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args(argv)
    from fbp_landcover.engine.demo import FULL

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.monotonic()
    runs = {int(s): run_seed(int(s), Path(args.out), args.cover, FULL, log) for s in args.seeds.split(",")}
    print(table(runs))
    print(f"\nrecipe: {FULL}\nwall time {time.monotonic() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
