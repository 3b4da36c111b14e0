"""End-to-end demonstration on generated data: train, adapt, map and evaluate, in a few minutes on a CPU.

Everything is synthetic: the landscapes, the "Gaofen-2" source scenes and the "PlanetScope" target scene
come from ``demo.synthetic`` and the model is trained on them only, so the numbers say how the method
behaves on a controlled shift, not how a real FBP model performs on real imagery.

Steps (deterministic for a seed): write the dataset; train a small U-Net on the labelled source scenes;
adapt it to the unlabelled target image (DPA); map the target with the source-only and the adapted model
(class map, confidence, areas, quicklook); adapt the source model the same way to the no-shift control
scene, and map that scene with the source-only and that adapted model; evaluate every map against its
held-back truth (24 classes and the coarse legend); write demo_report.md.
A failed or cancelled run removes what it wrote into ``out_dir``.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import FbpError
from ..io.atomic import AtomicFiles
from ..progress import Progress
from .report import final_text, headline, report

REPORT = "demo_report.md"
SUMMARY = "demo_summary.json"
# Everything the demo writes directly inside out_dir (replaced as a whole with overwrite).
PRODUCTS = ("data", "models", "maps", "evaluation", REPORT, SUMMARY)


@dataclass(frozen=True)
class DemoRecipe:
    """Sizes and budgets of one demo run (the defaults are the recipe the adaptation benchmark measured)."""

    n_source: int = 2
    source_size: int = 512
    target_size: int = 512
    smp_arch: str = "Unet"
    encoder: str = "tu-mobilenetv3_small_050"
    arch_kwargs: dict = field(default_factory=lambda: {"encoder_depth": 3, "decoder_channels": [32, 16, 8]})
    iterations: int = 300
    batch_size: int = 8
    patch: int = 128
    lr: float = 0.05
    class_aware: bool = True
    # DPA as published, with the source memory (the best on the benchmark: bench/README.md)
    adapt_method: str = "siamese"
    adapt_iterations: int = 60
    adapt_patch: int = 128
    memory_count: int = 128
    val_patches: int = 8
    adapt_lr: float = 0.001
    adapt_batch_size: int = 4
    stats: str = "scene"  # training normalisation: each scene's own statistics, as mapping (bench_stats.py)


FULL = DemoRecipe()
QUICK = DemoRecipe(n_source=1, source_size=192, target_size=160, iterations=6, batch_size=2, patch=64,
                   adapt_iterations=3, adapt_batch_size=2, adapt_patch=64, memory_count=8,
                   val_patches=2)


def train_with_recipe(source_root, out, recipe: DemoRecipe, seed: int, *, device: str = "cpu",
                      architecture: dict | None = None, name: str | None = None, progress=None,
                      sensor: str = "auto"):
    """Train a source model on ``source_root`` (an FBP folder, or (image, label) raster pairs read with
    ``sensor``) with the recipe's budget (one epoch of recipe.iterations) and its small U-Net, or
    ``architecture`` (TrainConfig's architecture, smp_arch, encoder, arch_kwargs)."""
    from ..training.config import TrainConfig
    from ..training.train import train_source

    arch = architecture or {"architecture": "smp", "smp_arch": recipe.smp_arch, "encoder": recipe.encoder,
                            "arch_kwargs": dict(recipe.arch_kwargs)}
    config = TrainConfig(**arch, name=name, epochs=1, iterations_per_epoch=recipe.iterations,
                         batch_size=recipe.batch_size, patch=recipe.patch, lr=recipe.lr,
                         class_aware=recipe.class_aware,
                         stats=recipe.stats, val_patches=recipe.val_patches, memory_count=recipe.memory_count,
                         memory_size=recipe.patch, seed=seed, device=device, resume=False, sensor=sensor)
    source = source_root if isinstance(source_root, (list, tuple)) else str(source_root)
    return train_source(source, out, config, progress=progress)


def _check_out(out: Path, overwrite: bool) -> None:
    existing = [p for p in PRODUCTS if (out / p).exists()]
    if existing and not overwrite:
        raise FbpError(f"The folder {out} already holds demo results ({', '.join(existing)}); "
                       "choose another folder or ask to overwrite them (--overwrite).")
    if out.exists() and not out.is_dir():
        raise FbpError(f"The demo output {out} is a file; give a folder name such as demo_out.")


def _remove_products(out: Path) -> None:
    """Remove what a demo run writes directly inside out_dir (nothing else there is touched)."""
    for name in PRODUCTS:
        p = out / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def run_demo(out_dir: str | os.PathLike = "demo_out", seed: int = 0, *, quick: bool = False,
             overwrite: bool = False, recipe: DemoRecipe | None = None, device: str = "cpu",
             progress=None, is_cancelled=None) -> dict:
    """Run the demonstration into ``out_dir``; returns a summary dict (paths, scores, timings, "text").

    Refuses a folder that already holds demo results unless ``overwrite`` (then the earlier results are
    replaced; other files in the folder are left alone). A failed or cancelled run (is_cancelled, Ctrl-C)
    removes everything it wrote, so no half-finished result is left.
    """
    prog = Progress(progress, is_cancelled)
    recipe = recipe or (QUICK if quick else FULL)
    out = Path(out_dir).expanduser().absolute()
    _check_out(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    _remove_products(out)
    try:
        summary = _run(out, seed, recipe, device, prog)
    except BaseException:
        _remove_products(out)
        raise
    summary["text"] = final_text(summary)
    return summary


def _run(out: Path, seed: int, recipe: DemoRecipe, device: str, prog: Progress) -> dict:
    from . import synthetic

    times: dict[str, float] = {}
    t_all = time.monotonic()
    with _timed(times, "generate data"):
        prog(0.0, "Generating the synthetic source scenes and target image")
        data = synthetic.domain_shift_dataset(out / "data", seed, n_source=recipe.n_source,
                                              source_size=recipe.source_size, target_size=recipe.target_size)
        prog.check()
    models = out / "models"
    models.mkdir()
    src_model, ada_model = models / "source_only.fbpmodel", models / "adapted.fbpmodel"
    ctl_model = models / "control_adapted.fbpmodel"
    with _timed(times, "train source model"):
        _train_source(data, src_model, recipe, seed, device, prog.stage(0.02, 0.58))
    with _timed(times, "adapt to the target"):
        adapt_info = _adapt(src_model, ada_model, data.target_image, recipe, seed, device, "demo-adapted",
                            prog.stage(0.58, 0.70))
    # the same adaptation on the unshifted control: where nothing needs adapting it must not harm
    with _timed(times, "adapt to the control"):
        control_info = _adapt(src_model, ctl_model, data.control_image, recipe, seed, device,
                              "demo-adapted-to-control", prog.stage(0.70, 0.82))
    with _timed(times, "map and evaluate"):
        runs = [("source_only", src_model, data.target_image, data.target_truth),
                ("adapted", ada_model, data.target_image, data.target_truth),
                ("control_source_only", src_model, data.control_image, data.control_truth),
                ("control_adapted", ctl_model, data.control_image, data.control_truth)]
        results = {tag: _map_and_evaluate(out, tag, model, image, truth, device,
                                          prog.stage(0.82 + 0.045 * k, 0.82 + 0.045 * (k + 1)))
                   for k, (tag, model, image, truth) in enumerate(runs)}
    times["total"] = time.monotonic() - t_all
    summary = {
        "synthetic": True, "quick": recipe == QUICK, "seed": seed, "recipe": asdict(recipe), "device": device,
        "out_dir": str(out), "report": str(out / REPORT), "summary_json": str(out / SUMMARY),
        "models": {"source_only": str(src_model), "adapted": str(ada_model),
                   "control_adapted": str(ctl_model)},
        "data": {"source": str(data.source_root), "target_image": str(data.target_image),
                 "target_truth": str(data.target_truth), "control_image": str(data.control_image),
                 "control_truth": str(data.control_truth), "target_sensor": data.target_sensor},
        "adaptation": adapt_info, "control_adaptation": control_info,
        "scores": {tag: {legend: headline(r[legend]) for legend in ("fine", "coarse")}
                   for tag, r in results.items()},
        "files": {tag: r["files"] for tag, r in results.items()},
        "seconds": {k: round(v, 1) for k, v in times.items()},
    }
    with AtomicFiles() as files:
        files.write_text(out / REPORT, report(summary, results))
        files.write_text(out / SUMMARY, json.dumps(summary, indent=2, default=str))
    prog.check()
    prog(1.0, f"Demo finished in {times['total']:.0f} s")
    return summary


@contextmanager
def _timed(times: dict[str, float], step: str):
    t = time.monotonic()
    yield
    times[step] = time.monotonic() - t


def _train_source(data, src_model: Path, recipe: DemoRecipe, seed: int, device: str, prog: Progress) -> None:
    """The source-only model, and nothing else of its run: one epoch leaves no resume or "last" file to
    keep."""
    models = src_model.parent
    train_with_recipe(data.source_root, src_model, recipe, seed, device=device, name="demo-source-only",
                      progress=prog)
    for leftover in (models / "source_only.resume.pt", models / "source_only.last.fbpmodel"):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(models / ".fbp_label_cache", ignore_errors=True)


def _adapt(src_model: Path, ada_model: Path, image, recipe: DemoRecipe, seed: int, device: str, name: str,
           prog: Progress) -> dict:
    """The source model adapted to ``image``; returns what the adaptation did (for the report)."""
    from ..training.adapt import adapt
    from ..training.config import AdaptOptions

    source = None if recipe.adapt_method in ("auto", "siamese") else False  # None: the model's source memory
    config = AdaptOptions(method=recipe.adapt_method, iterations=recipe.adapt_iterations, lr=recipe.adapt_lr,
                          batch_size=recipe.adapt_batch_size, patch=recipe.adapt_patch, seed=seed,
                          device=device)
    card = adapt(str(src_model), str(image), out=ada_model, config=config, name=name, source=source,
                 progress=prog)
    return {k: card.provenance.get(k) for k in ("method", "iterations", "source_used",
                                                "final_pseudo_label_share", "seconds", "guard_verdict")}


def _map_and_evaluate(out: Path, tag: str, model: Path, image, truth, device: str, stage: Progress) -> dict:
    """Map one image with one model (with every product, except for the control) and score it in both
    legends."""
    from ..assessment.evaluate import evaluate
    from ..mapping import MapRequest, map_landcover

    maps, evals = out / "maps", out / "evaluation"
    maps.mkdir(exist_ok=True)
    evals.mkdir(exist_ok=True)
    products = {"confidence": maps / f"{tag}_confidence.tif", "areas": maps / f"{tag}_areas.csv",
                "quicklook": maps / f"{tag}.png"} if not tag.startswith("control") else {}
    # torch backend: for these small images exporting each new model to ONNX costs more than it saves
    res = map_landcover(MapRequest(image=str(image), output=str(maps / f"{tag}.tif"), model=str(model),
                                   sensor="auto", device=device, backend="torch",
                                   **{k: str(v) for k, v in products.items()}),
                        stage.stage(0.0, 0.8))
    fine = evaluate(res.output, str(truth), out_prefix=str(evals / tag))
    coarse = evaluate(res.output, str(truth), collapse="coarse", out_prefix=str(evals / f"{tag}_coarse"))
    stage(1.0, f"Mapped and evaluated: {tag}")
    return {"fine": fine, "coarse": coarse, "sensor": res.sensor,
            "files": {"map": res.output, **{k: str(v) for k, v in products.items()},
                      "evaluation": str(evals / f"{tag}.md"),
                      "evaluation_coarse": str(evals / f"{tag}_coarse.md")}}
