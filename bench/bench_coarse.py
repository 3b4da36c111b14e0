"""The coarse blend (the FPN's 1/4-resolution probabilities blended, then upsampled once) against the
full-resolution blend (every window upsampled by the model's own head, then blended): agreement of the class
maps, and the accuracy of both on the generated demo benchmark, with a trained `compact` model. "= full": the
model's own head upsampling every window (smp: align_corners=True); "= half-px": the same full-resolution
blend through a half-pixel-centred upsampling, the one the coarse blend interpolates.

    .venv/bin/python bench/bench_coarse.py [--iterations 300] [--seed 0]

The model is trained here on generated Gaofen-2-like scenes (engine.demo.synthetic): it is a model trained on
generated data, and its maps are compared with each other, and scored against the generated truth. The
real rasters of ../shared/data (when present) are mapped by the same model for the agreement only (they
have no FBP truth). Each map is timed too (in-process, after a warm-up; one run each).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
REAL = [("haiti_rgbn_5m.tif", "rgbn"), ("naip_nd_2020_rgbn_5m.tif", "rgbn")]


def train_compact(folder: Path, iterations: int, seed: int):
    from fbp_landcover.engine.demo import synthetic
    from fbp_landcover.engine.models.presets import preset
    from fbp_landcover.engine.training.config import TrainConfig
    from fbp_landcover.engine.training.train import train_source

    data = synthetic.domain_shift_dataset(folder / "data", seed, n_source=2, source_size=512,
                                          target_size=1024, control=True)
    epochs = 3
    config = TrainConfig(**preset("compact"), epochs=epochs,
                         iterations_per_epoch=max(1, iterations // epochs), batch_size=4, patch=128,
                         val_patches=4, memory_count=64, memory_size=128, stats="scene", device="cpu",
                         resume=False, seed=seed)
    model = folder / "compact.fbpmodel"
    train_source(str(data.source_root), model, config)
    return data, model


def map_both(image: str, sensor: str, model: Path, out: Path) -> dict:
    """Map with the coarse blend, with the full-resolution one (every window upsampled by the model's own
    head: smp's align_corners=True, a stretch that depends on the window's size), and with the full-resolution
    one through a half-pixel-centred upsampling (align_corners=False, what the coarse blend interpolates);
    classes, seconds."""
    from osgeo import gdal

    import fbp_landcover.engine.models as models
    from fbp_landcover.engine.mapping import MapRequest, map_landcover
    from fbp_landcover.engine.mapping import run as mapping_run
    from fbp_landcover.engine.torch_import import import_torch

    plain, head = mapping_run.default_settings, models.final_upsample
    half_pixel = import_torch().nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False)
    result = {}
    for name, coarse in (("coarse", True), ("full", False), ("half", False)):
        mapping_run.default_settings = lambda *a, c=coarse, **k: dataclasses.replace(plain(*a, **k), coarse=c)
        models.final_upsample = (lambda _m: half_pixel) if name == "half" else head
        try:
            req = MapRequest(image=image, output=str(out / f"{Path(image).stem}.{name}.tif"),
                             model=str(model), sensor=sensor, overwrite=True)
            t = time.perf_counter()
            map_landcover(req)
            result[name + "_s"] = time.perf_counter() - t
        finally:
            mapping_run.default_settings, models.final_upsample = plain, head
        result[name] = gdal.Open(req.output).ReadAsArray()
        result[name + "_path"] = req.output
    return result


def miou(map_path: str, truth: str) -> float:
    from fbp_landcover.engine.assessment.evaluate import evaluate

    return evaluate(map_path, truth)["miou_present"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT.parent))
    import numpy as np

    tmp = Path(tempfile.mkdtemp(prefix="fbp-coarse-"))
    data, model = train_compact(tmp, args.iterations, args.seed)
    rows = [("generated target (PlanetScope-like)", str(data.target_image), "auto", str(data.target_truth)),
            ("generated control (no shift)", str(data.control_image), "auto", str(data.control_truth))]
    rows += [(f"real: {name}", str(SHARED / name), sensor, None)
             for name, sensor in REAL if (SHARED / name).exists()]
    map_both(rows[0][1], rows[0][2], model, tmp)  # warm-up: the ONNX export
    print(f"{'raster':42s} {'pixels':>9s} {'= full':>8s} {'= half-px':>9s} {'mIoU coarse':>11s} "
          f"{'mIoU full':>9s} {'s coarse':>8s} {'s full':>7s}")
    for label, image, sensor, truth in rows:
        res = map_both(image, sensor, model, tmp)
        same = float(np.mean(res["coarse"] == res["full"]))
        same_half = float(np.mean(res["coarse"] == res["half"]))
        scores = ("", "")
        if truth:
            scores = (f"{miou(res['coarse_path'], truth):.4f}", f"{miou(res['full_path'], truth):.4f}")
        print(f"{label:42s} {res['coarse'].size:9d} {same * 100:7.2f}% {same_half * 100:8.2f}% "
              f"{scores[0]:>11s} {scores[1]:>9s} "
              f"{res['coarse_s']:8.2f} {res['full_s']:7.2f}")


if __name__ == "__main__":
    main()
