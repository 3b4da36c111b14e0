"""Does DPA adaptation help on the generated cross-sensor shift? Several seeds, one source model per seed.

For each seed: generate the synthetic dataset (engine.demo.synthetic.domain_shift_dataset), train the demo's
source model (engine.demo.FULL recipe), then score on the shifted target and on the no-shift control:
source-only, quick source-free adaptation (default: bn+kl), and Siamese DPA with the source memory.
Scores: mIoU over the classes present in the truth (24 classes) and on the coarse legend, via
map_landcover + engine.assessment.evaluate, exactly as the demo and the CLI do. Prints a table of means.

    .venv/bin/python bench/bench_adaptation.py --seeds 0,1,2 [--out /tmp/bench_adapt] [--variants ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

VARIANTS = {  # name -> adapt() options (None: no adaptation)
    "source-only": None,
    "bn": {"method": "bn", "source": False},
    "bn+kl (source-free)": {"method": "bn+kl", "source": False},
    "siamese (memory)": {"method": "siamese", "source": None},
}


def score(model: Path, image: Path, truth: Path, out: Path) -> dict:
    from fbp_landcover.engine.assessment.evaluate import evaluate
    from fbp_landcover.engine.mapping import MapRequest, map_landcover

    map_landcover(MapRequest(image=str(image), output=str(out), model=str(model), device="cpu",
                             overwrite=True))
    fine, coarse = evaluate(str(out), str(truth)), evaluate(str(out), str(truth), collapse="coarse")
    return {"miou": fine["miou_present"], "oa": fine["overall_accuracy"],
            "coarse_miou": coarse["miou_present"],
            "coarse_oa": coarse["overall_accuracy"]}


def run_seed(seed: int, root: Path, variants: list[str], control_variants: list[str], recipe,
             iterations: int | None, log) -> dict:
    from fbp_landcover.engine.demo import synthetic, train_with_recipe
    from fbp_landcover.engine.training.adapt import adapt

    d = root / f"seed{seed}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    data = synthetic.domain_shift_dataset(d / "data", seed, n_source=recipe.n_source,
                                          source_size=recipe.source_size, target_size=recipe.target_size)
    t = time.monotonic()
    model = d / "source.fbpmodel"
    train_with_recipe(data.source_root, model, recipe, seed)
    log(f"seed {seed}: source model trained in {time.monotonic() - t:.0f} s")
    out: dict = {}
    for scene, image, truth in (("target", data.target_image, data.target_truth),
                                ("control", data.control_image, data.control_truth)):
        for name in variants:
            if scene == "control" and name not in control_variants:
                continue
            opts = VARIANTS[name]
            t = time.monotonic()
            if opts is None:
                used = model
            else:
                used = d / f"{scene}_{name.split()[0]}.fbpmodel"
                adapt(str(model), str(image), out=used, iterations=iterations or recipe.adapt_iterations,
                      lr=recipe.adapt_lr, batch_size=recipe.adapt_batch_size, patch=recipe.adapt_patch,
                      seed=seed,
                      device="cpu", **opts)
            out[(scene, name)] = {**score(used, image, truth, d / f"{scene}_{name.split()[0]}.tif"),
                                  "seconds": time.monotonic() - t}
            r = out[(scene, name)]
            log(f"seed {seed} {scene:7s} {name:22s} mIoU {r['miou']:.3f} coarse mIoU {r['coarse_miou']:.3f} "
                f"OA {r['oa']:.3f} ({r['seconds']:.0f} s)")
    return out


def table(all_runs: dict[int, dict], variants: list[str]) -> str:
    seeds = sorted(all_runs)
    lines = [f"seeds: {', '.join(map(str, seeds))}", "",
             "| scene | variant | mIoU (24) | coarse mIoU | OA (24) | coarse OA | mIoU change vs source-only "
             "(per seed) |", "|---|---|---:|---:|---:|---:|---|"]
    for scene in ("target", "control"):
        for name in variants:
            if (scene, name) not in all_runs[seeds[0]]:
                continue
            rows = [all_runs[s][(scene, name)] for s in seeds]
            base = [all_runs[s][(scene, "source-only")]["miou"] for s in seeds] \
                if "source-only" in variants else None
            mean = {k: float(np.mean([r[k] for r in rows]))
                    for k in ("miou", "coarse_miou", "oa", "coarse_oa")}
            change = ("" if base is None or name == "source-only" else
                      " ".join(f"{100 * (r['miou'] - b):+.1f}" for r, b in zip(rows, base, strict=True)))
            lines.append(f"| {scene} | {name} | {mean['miou']:.3f} | {mean['coarse_miou']:.3f} | "
                         f"{mean['oa']:.3f} | {mean['coarse_oa']:.3f} | {change} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default="/tmp/bench_adaptation")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated: " + ", ".join(VARIANTS))
    ap.add_argument("--control-variants", default="source-only,bn+kl (source-free)",
                    help="the variants also run on the no-shift control scene")
    ap.add_argument("--iterations", type=int, help="adaptation iterations (default: the demo recipe's)")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args(argv)
    from fbp_landcover.engine.demo import FULL

    variants = [v.strip() for v in args.variants.split(",")]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.monotonic()
    control = [v.strip() for v in args.control_variants.split(",")]
    runs = {int(s): run_seed(int(s), Path(args.out), variants, control, FULL, args.iterations, log)
            for s in args.seeds.split(",")}
    print(table(runs, variants))
    print(f"\nrecipe: {FULL}\nwall time {time.monotonic() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({s: {f"{k[0]}/{k[1]}": v for k, v in r.items()}
                                               for s, r in runs.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
