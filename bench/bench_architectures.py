"""What does choosing the compact model cost in accuracy? The demo benchmark, one architecture at a time.

For each seed: generate the demo's synthetic dataset (engine.demo.synthetic.domain_shift_dataset), then for
each architecture train a source model with the demo recipe (engine.demo.FULL: same data, iterations, batch,
patch, learning rate), adapt it to the target with Siamese DPA (the demo's method), and score source-only and
adapted maps on the shifted target and the no-shift control (mIoU over the classes present, 24 classes and the
coarse legend), through map_landcover + engine.assessment.evaluate as the demo does. Prints a table of means,
the per-seed values and the training time of each architecture.

    .venv/bin/python bench/bench_architectures.py --seeds 0,1 [--archs compact,fbp_unet] [--out DIR]

Synthetic data and short CPU training only: this compares architectures under the same small budget; it
is not the accuracy of any model on real Five-Billion-Pixels imagery.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARCHS = {  # name -> TrainConfig architecture fields
    "demo": {"architecture": "smp", "smp_arch": "Unet", "encoder": "tu-mobilenetv3_small_050",
             "arch_kwargs": {"encoder_depth": 3, "decoder_channels": [32, 16, 8]}},
    "compact": "preset",
    "unet_mnv3s": {"architecture": "smp", "smp_arch": "Unet", "encoder": "tu-mobilenetv3_small_100",
                   "arch_kwargs": {"decoder_channels": [64, 32, 24, 16, 8]}},
    "unet_lean": {"architecture": "smp", "smp_arch": "Unet", "encoder": "tu-mobilenetv3_small_100",
                  "arch_kwargs": {"decoder_channels": [32, 16, 16, 8, 8]}},
    "linknet": {"architecture": "smp", "smp_arch": "Linknet", "encoder": "tu-mobilenetv3_small_100",
                "arch_kwargs": {}},
    "fbp_unet": "preset",
}
LABELS = {
    "demo": "demo's small U-Net (MobileNetV3-small-050, depth 3)",
    "compact": "compact preset (FPN, MobileNetV3-small)",
    "unet_mnv3s": "U-Net, MobileNetV3-small (the earlier compact)",
    "unet_lean": "U-Net, MobileNetV3-small, decoder 32-16-16-8-8",
    "linknet": "Linknet, MobileNetV3-small",
    "fbp_unet": "fbp_unet (the authors' U-Net)",
}


def arch_args(name: str) -> dict:
    from fbp_landcover.engine.models.presets import preset

    spec = ARCHS[name]
    if spec == "preset":
        p = preset(name)
        return {"architecture": p["architecture"], "smp_arch": p["smp_arch"], "encoder": p["encoder"],
                "arch_kwargs": p["arch_kwargs"]}
    return dict(spec)


def run_seed(seed: int, root: Path, archs: list[str], recipe, log) -> dict:
    from bench.bench_adaptation import score
    from fbp_landcover.engine.demo import synthetic, train_with_recipe
    from fbp_landcover.engine.training.adapt import adapt

    d = root / f"seed{seed}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    data = synthetic.domain_shift_dataset(d / "data", seed, n_source=recipe.n_source,
                                          source_size=recipe.source_size, target_size=recipe.target_size)
    out: dict = {}
    for name in archs:
        t = time.monotonic()
        model = d / f"{name}.fbpmodel"
        train_with_recipe(data.source_root, model, recipe, seed, architecture=arch_args(name))
        train_s = time.monotonic() - t
        t = time.monotonic()
        adapted = d / f"{name}.adapted.fbpmodel"
        adapt(str(model), str(data.target_image), out=adapted, method=recipe.adapt_method, source=None,
              iterations=recipe.adapt_iterations, lr=recipe.adapt_lr, batch_size=recipe.adapt_batch_size,
              patch=recipe.adapt_patch, seed=seed, device="cpu")
        adapt_s = time.monotonic() - t
        tgt, tgt_truth = data.target_image, data.target_truth
        ctl, ctl_truth = data.control_image, data.control_truth
        out[name] = {
            "target source-only": score(model, tgt, tgt_truth, d / f"{name}_t.tif", "auto"),
            "target adapted": score(adapted, tgt, tgt_truth, d / f"{name}_ta.tif", "auto"),
            "control source-only": score(model, ctl, ctl_truth, d / f"{name}_c.tif", "auto"),
            "train_s": train_s, "adapt_s": adapt_s,
        }
        r = out[name]
        log(f"seed {seed} {name:10s} target mIoU {r['target source-only']['miou']:.3f} -> "
            f"{r['target adapted']['miou']:.3f} control {r['control source-only']['miou']:.3f} "
            f"(train {train_s:.0f} s, adapt {adapt_s:.0f} s)")
    return out


def table(runs: dict[int, dict], archs: list[str]) -> str:
    seeds = sorted(runs)
    cols = ("target source-only", "target adapted", "control source-only")
    lines = [f"seeds: {', '.join(map(str, seeds))}", "",
             "| architecture | target mIoU, source-only | target mIoU, adapted | control mIoU | coarse mIoU "
             "(target, adapted) | per seed (target adapted) | train s | adapt s |",
             "|---|---:|---:|---:|---:|---|---:|---:|"]
    for name in archs:
        rows = [runs[s][name] for s in seeds]
        mean = [float(np.mean([r[c]["miou"] for r in rows])) for c in cols]
        coarse = float(np.mean([r["target adapted"]["coarse_miou"] for r in rows]))
        per_seed = " ".join(f"{r['target adapted']['miou']:.3f}" for r in rows)
        lines.append(f"| {LABELS[name]} | {mean[0]:.3f} | {mean[1]:.3f} | {mean[2]:.3f} | {coarse:.3f} | "
                     f"{per_seed} | {np.mean([r['train_s'] for r in rows]):.0f} | "
                     f"{np.mean([r['adapt_s'] for r in rows]):.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--archs", default=",".join(ARCHS), help="comma-separated: " + ", ".join(ARCHS))
    ap.add_argument("--out", default="/tmp/bench_architectures")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args(argv)
    from fbp_landcover.engine.demo import FULL

    archs = [a.strip() for a in args.archs.split(",")]
    unknown = [a for a in archs if a not in ARCHS]
    if unknown:
        ap.error(f"unknown architecture(s) {unknown}; choose from {list(ARCHS)}")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.monotonic()
    runs = {int(s): run_seed(int(s), Path(args.out), archs, FULL, log) for s in args.seeds.split(",")}
    print(table(runs, archs))
    print(f"\nrecipe: {FULL}\nwall time {time.monotonic() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
