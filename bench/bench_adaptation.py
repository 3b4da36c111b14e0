"""Does adaptation help? Several domains and seeds, one source model per domain and seed.

Domains: ``generated`` (engine.demo.synthetic.domain_shift_dataset: the demo's cross-sensor and cross-region
shift) and the controlled shifts on real labelled rasters of bench/real_domains.py (``slovenia``,
``chiapas``). For each domain and seed: train the demo's source model (engine.demo.FULL recipe; on a real
domain on its train labels), then score on the shifted target and on the no-shift control: source-only and
each adaptation variant. Scores: mIoU over the classes present in the truth (24 classes) and on the coarse
legend, via map_landcover + engine.assessment.evaluate, exactly as the demo and the CLI do.

Printed per domain: the mean table, and per variant and seed the recovery (adapted − shifted) / (control −
shifted) with the control = source-only on the control scene, and the no-shift cost (control − the variant on
the control scene). A guard fallback scores as the source model (0 recovery).

    .venv/bin/python bench/bench_adaptation.py --domains generated,slovenia,chiapas --seeds 0,1,2 \
        [--variants ...] [--control-variants ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

TEACHER = 0.95  # the EMA momentum of the variants with a mean teacher
VARIANTS = {  # name -> adapt() options (None: no adaptation)
    "source-only": None,
    "dpa-reference": {"method": "dpa-reference", "source": None},
    "siamese+teacher": {"method": "siamese", "teacher": TEACHER, "source": None},
    "siamese+classmix": {"method": "siamese", "mix": "classmix", "source": None},
    "siamese+teacher+classmix": {"method": "siamese", "teacher": TEACHER, "mix": "classmix", "source": None},
    "siamese+teacher+classmix+quota": {"method": "siamese", "teacher": TEACHER, "mix": "classmix",
                                       "class_quota": 0.5, "source": None},
    "bn": {"method": "bn", "bn_target_share": 1.0, "source": False},
    "tent": {"method": "tent", "source": False},
    "bn+kl": {"method": "bn+kl", "bn_target_share": 1.0, "source": False},
    "bn+kl+teacher": {"method": "bn+kl", "bn_target_share": 1.0, "teacher": TEACHER, "source": False},
    "bn (half)": {"method": "bn", "bn_target_share": 0.5, "source": False},
    "bn+kl (half)": {"method": "bn+kl", "bn_target_share": 0.5, "source": False},  # the default
    "bn+kl+teacher (half)": {"method": "bn+kl", "bn_target_share": 0.5, "teacher": TEACHER, "source": False},
}


def score(model: Path, image: Path, truth: Path, out: Path, sensor: str, stats: str = "scene") -> dict:
    """mIoU and OA (24 classes and the coarse legend) of ``model``'s map of ``image`` (with ``stats``)."""
    from fbp_landcover.engine.assessment.evaluate import evaluate
    from fbp_landcover.engine.mapping import MapRequest, map_landcover

    map_landcover(MapRequest(image=str(image), output=str(out), model=str(model), device="cpu", sensor=sensor,
                             stats=stats, overwrite=True))
    fine, coarse = evaluate(str(out), str(truth)), evaluate(str(out), str(truth), collapse="coarse")
    return {"miou": fine["miou_present"], "oa": fine["overall_accuracy"],
            "coarse_miou": coarse["miou_present"], "coarse_oa": coarse["overall_accuracy"]}


def prepare(domain: str, seed: int, d: Path, recipe, log):
    """(model, sensor, [(scene, image, truth)]) of one domain and seed, the source model trained."""
    import real_domains

    from fbp_landcover.engine.demo import train_with_recipe

    t = time.monotonic()
    model = d / "source.fbpmodel"
    source, sensor, scenes = real_domains.domain_data(domain, seed, d, recipe)
    train_with_recipe(source, model, recipe, seed, sensor=sensor)
    log(f"{domain} seed {seed}: source model trained in {time.monotonic() - t:.0f} s")
    return model, sensor, scenes


def run_seed(domain: str, seed: int, root: Path, variants: list[str], control_variants: list[str], recipe,
             iterations: int | None, log) -> dict:
    from fbp_landcover.engine.training.adapt import adapt

    d = root / domain / f"seed{seed}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    model, sensor, scenes = prepare(domain, seed, d, recipe, log)
    out: dict = {}
    for scene, image, truth in scenes:
        for name in variants:
            if scene == "control" and name not in control_variants and name != "source-only":
                continue
            opts = VARIANTS[name]
            t = time.monotonic()
            used, rejected = model, False
            if opts is not None:
                used = d / f"{scene}_{_file(name)}.fbpmodel"
                card = adapt(str(model), str(image), out=used,
                             iterations=iterations or recipe.adapt_iterations,
                             lr=recipe.adapt_lr, batch_size=recipe.adapt_batch_size, patch=recipe.adapt_patch,
                             seed=seed, device="cpu", sensor=sensor, **opts)
                verdict = card.provenance.get("guard_verdict") or {}
                rejected = not verdict.get("passed", True)
            r = {**score(used, Path(image), Path(truth), d / f"{scene}_{_file(name)}.tif", sensor),
                 "seconds": time.monotonic() - t, "rejected": rejected}
            out[(scene, name)] = r
            log(f"{domain} seed {seed} {scene:7s} {name:32s} mIoU {r['miou']:.3f} coarse mIoU "
                f"{r['coarse_miou']:.3f} OA {r['oa']:.3f}{' (guard: source model)' if rejected else ''} "
                f"({r['seconds']:.0f} s)")
    return out


def _file(name: str) -> str:
    return name.replace("+", "_").replace(" ", "_").replace("(", "").replace(")", "")


def recovery(runs: dict, seed: int, name: str) -> float | None:
    r = runs[seed]
    shifted, control = r[("target", "source-only")]["miou"], r[("control", "source-only")]["miou"]
    if ("target", name) not in r or control - shifted <= 1e-9:
        return None
    return (r[("target", name)]["miou"] - shifted) / (control - shifted)


def table(domain: str, runs: dict[int, dict], variants: list[str]) -> str:
    seeds = sorted(runs)
    lines = [f"### {domain} (seeds {', '.join(map(str, seeds))})", "",
             "| scene | variant | mIoU (24) | coarse mIoU | OA | change vs source-only, points per seed | "
             "recovery per seed (mean) | no-shift cost per seed | guard fell back |",
             "|---|---|---:|---:|---:|---|---|---|---:|"]
    for scene in ("target", "control"):
        for name in variants:
            if (scene, name) not in runs[seeds[0]]:
                continue
            rows = [runs[s][(scene, name)] for s in seeds]
            base = [runs[s][(scene, "source-only")]["miou"] for s in seeds]
            mean = {k: float(np.mean([r[k] for r in rows])) for k in ("miou", "coarse_miou", "oa")}
            change = rec = cost = ""
            if name != "source-only":
                change = " ".join(f"{100 * (r['miou'] - b):+.1f}" for r, b in zip(rows, base, strict=True))
                if scene == "target":
                    rs = [recovery(runs, s, name) for s in seeds]
                    ok = [x for x in rs if x is not None]
                    rec = " ".join("n/a" if x is None else f"{100 * x:.0f}%" for x in rs) + (
                        f" ({100 * float(np.mean(ok)):.0f}%)" if ok else "")
                else:
                    cost = " ".join(f"{100 * (b - r['miou']):+.1f}" for r, b in zip(rows, base, strict=True))
            fell = sum(r.get("rejected", False) for r in rows)
            lines.append(f"| {scene} | {name} | {mean['miou']:.3f} | {mean['coarse_miou']:.3f} | "
                         f"{mean['oa']:.3f} "
                         f"| {change} | {rec} | {cost} | {fell} of {len(rows)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--domains", default="generated", help="comma-separated: generated, slovenia, chiapas")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default="/tmp/bench_adaptation")
    ap.add_argument("--variants", default="source-only,dpa-reference,siamese+teacher+classmix,bn+kl,tent",
                    help="comma-separated: " + ", ".join(VARIANTS))
    ap.add_argument("--control-variants", default="siamese+teacher+classmix,bn+kl",
                    help="the variants also run on the no-shift control scene")
    ap.add_argument("--iterations", type=int, help="adaptation iterations (default: the demo recipe's)")
    ap.add_argument("--json", help="also write the raw results here")
    args = ap.parse_args(argv)
    import real_domains

    from fbp_landcover.engine.demo import FULL

    variants = [v.strip() for v in args.variants.split(",")]
    control = [v.strip() for v in args.control_variants.split(",")]
    unknown = [v for v in variants + control if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    if "source-only" not in variants:
        variants.insert(0, "source-only")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    t0 = time.monotonic()
    results = {}
    for domain in [d.strip() for d in args.domains.split(",")]:
        if domain != "generated":
            why = real_domains.available(domain)
            if why:
                log(f"{domain}: skipped ({why})")
                continue
        results[domain] = {int(s): run_seed(domain, int(s), Path(args.out), variants, control, FULL,
                                            args.iterations, log) for s in args.seeds.split(",")}
        print(table(domain, results[domain], variants) + "\n", flush=True)
    print(f"recipe: {FULL}\nteacher momentum {TEACHER}\nwall time {time.monotonic() - t0:.0f} s")
    if args.json:
        raw = {dom: {s: {f"{k[0]}/{k[1]}": v for k, v in r.items()} for s, r in runs.items()}
               for dom, runs in results.items()}
        Path(args.json).write_text(json.dumps(raw, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
