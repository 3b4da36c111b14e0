"""Which normalisation should training and mapping default to? (issue 15, point 7)

For each domain and seed (the domains of bench_adaptation.py: ``generated``, and the controlled shifts on real
labelled rasters ``slovenia``, ``chiapas``), train the demo's source model twice with the same data, seed and
budget (engine.demo.FULL): with the fixed FBP source statistics (``train --stats source``) and with each
scene's own statistics (``train --stats scene``). Map the shifted target and the no-shift control with each
model: the source-trained model with per-scene statistics (mapping's default) and with its own fixed ones
(``--stats checkpoint``), the scene-trained model with per-scene statistics. Scores: mIoU over the classes
present (24 classes), with the adaptation benchmark's ``score`` (map_landcover + evaluate, as the CLI). No
adaptation.

    .venv/bin/python bench/bench_stats.py --domains generated,slovenia,chiapas --seeds 0,1 [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

COMBOS = (("source", "scene"), ("source", "checkpoint"), ("scene", "scene"))  # (train --stats, map --stats)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_seed(domain: str, seed: int, root: Path) -> dict:
    import real_domains
    from bench_adaptation import score

    from fbp_landcover.engine.demo import FULL, train_with_recipe

    d = root / domain / f"seed{seed}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    source, sensor, scenes = real_domains.domain_data(domain, seed, d, FULL)
    out: dict = {}
    for train_stats in ("source", "scene"):
        t = time.monotonic()
        model = d / f"train_{train_stats}.fbpmodel"
        train_with_recipe(source, model, dataclasses.replace(FULL, stats=train_stats), seed, sensor=sensor)
        log(f"{domain} seed {seed}: trained with --stats {train_stats} in {time.monotonic() - t:.0f} s")
        for tr, mp in COMBOS:
            if tr != train_stats:
                continue
            for scene, image, truth in scenes:
                miou = float(score(model, image, truth, d / f"{tr}_{mp}_{scene}.tif", sensor, mp)["miou"])
                out[f"{tr}/{mp}/{scene}"] = miou
                log(f"{domain} seed {seed}: train {tr:6s} map {mp:10s} {scene:7s} mIoU {miou:.3f}")
    return out


def table(runs: dict) -> str:
    lines = ["| domain | train → map statistics | target mIoU (mean; per seed) "
             "| control mIoU (mean; per seed) |",
             "|---|---|---:|---:|"]
    for domain, seeds in runs.items():
        for tr, mp in COMBOS:
            cells = []
            for scene in ("target", "control"):
                vals = [seeds[s][f"{tr}/{mp}/{scene}"] for s in sorted(seeds)]
                cells.append(f"{np.mean(vals):.3f} ({' '.join(f'{v:.3f}' for v in vals)})")
            lines.append(f"| {domain} | {tr} → {mp} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--domains", default="generated,slovenia,chiapas")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--out", default="/tmp/bench_stats")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args(argv)
    import real_domains

    t0 = time.monotonic()
    runs: dict = {}
    for domain in args.domains.split(","):
        if domain != "generated" and (why := real_domains.available(domain)):
            log(f"{domain}: skipped ({why})")
            continue
        runs[domain] = {int(s): run_seed(domain, int(s), Path(args.out)) for s in args.seeds.split(",")}
    print(table(runs))
    print(f"\nwall time {time.monotonic() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
