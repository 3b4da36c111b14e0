"""Source training with the reference defaults (fbp.md §3), resumable, with a source memory beside the model.

SGD (Nesterov, momentum 0.9, weight decay 1e-5), lr 0.005 with poly decay (power 0.9) every iteration,
batch 16 of 512x512 patches, class-weighted cross-entropy (weights from the training labels, ignore 0),
mixed precision on a GPU, validation mIoU each epoch, best and last checkpoints with full provenance.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..classes import NUM_OUTPUTS
from ..errors import FbpError
from ..io.atomic import atomic_path
from ..models.devices import pick_device
from ..models.torch_import import import_torch
from ..progress import Progress

PATCH_STRIDE = 384  # the reference cut 512 windows at stride 384: one epoch covers that many patches
RESUME_SUFFIX = ".resume.pt"
LAST_SUFFIX = ".last"


# ---- small shared helpers (also used by adapt) ---------------------------------------------------------

def poly_lr(base_lr: float, iteration: int, total: int, power: float = 0.9) -> float:
    """The reference "poly" schedule: base_lr * (1 - iteration / total) ** power."""
    return base_lr * (1.0 - min(iteration, total) / max(1, total)) ** power


def make_optimizer(model, lr: float, momentum: float = 0.9, weight_decay: float = 1e-5):
    torch = import_torch()
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay)


def confusion(pred: np.ndarray, ref: np.ndarray, n: int = NUM_OUTPUTS) -> np.ndarray:
    """Confusion matrix (reference rows, prediction columns) over pixels whose reference label > 0."""
    from ..assessment.metrics import ConfusionMatrix

    cm = ConfusionMatrix(n - 1)
    cm.add(pred, ref)
    return cm.matrix


def miou(cm: np.ndarray) -> float:
    """Mean IoU over the classes present in the reference (engine.metrics, the reference code's convention)."""
    from ..assessment.metrics import scores

    value = scores(cm)["miou_present"]
    return float("nan") if value is None else float(value)


def predict_classes(logits) -> Any:
    """argmax over channels 1..24 (channel 0 never wins)."""
    return logits[:, 1:].argmax(dim=1) + 1


def evaluate(model, batches, device: str, amp: bool = False) -> tuple[float, np.ndarray]:
    """(mIoU, confusion) of a model in eval mode over (image, label) tensor batches."""
    torch = import_torch()
    was_training = model.training
    model.eval()
    cm = np.zeros((NUM_OUTPUTS, NUM_OUTPUTS), np.int64)
    with torch.no_grad():
        for x, y in batches:
            with torch.autocast("cuda", enabled=amp and device.startswith("cuda")):
                logits = model(x.to(device))
            cm += confusion(predict_classes(logits.float()).cpu().numpy(), y.numpy())
    model.train(was_training)
    return miou(cm), cm


def atomic_torch_save(obj: dict, path: str | os.PathLike) -> None:
    """torch.save through io.atomic (tensors and primitives only)."""
    torch = import_torch()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def companion(path: str | os.PathLike, suffix: str) -> Path:
    """A file beside a checkpoint: ``model.fbpmodel`` + '.resume.pt' -> ``model.resume.pt``."""
    from ..models.card import model_stem

    path = Path(path)
    return path.parent / (model_stem(path) + suffix)


def last_path(out: str | os.PathLike) -> Path:
    from ..models.card import EXTENSION

    return companion(out, LAST_SUFFIX + EXTENSION)


# ---- opening labelled sources ----------------------------------------------------------------------

def open_labelled_source(source, *, image: str = "8bit", sensor: str = "auto", class_mapping=None,
                         label_cache: str | os.PathLike | None = None, working_gsd: float | None = None) -> list:
    """Scenes from an FBP root, a list of (image, label) pairs, or already opened scene objects."""
    from .fbp_dataset import is_fbp_root, open_fbp
    from .labelled_data import LabelledRaster

    if isinstance(source, (str, os.PathLike)):
        if not is_fbp_root(source):
            raise FbpError(f"{source} is not a Five-Billion-Pixels folder (no Annotation__index/ inside); give the "
                           "dataset root, or (image, label) raster pairs.")
        return open_fbp(source, image=image, label_cache=label_cache)
    scenes = []
    for item in source:
        if hasattr(item, "read") and hasattr(item, "label_window"):
            scenes.append(item)
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            scenes.append(LabelledRaster(item[0], item[1], sensor=sensor, class_mapping=class_mapping,
                                         working_gsd=working_gsd))
        else:
            raise FbpError(f"The training source entry {item!r} is neither an (image, label) pair nor a scene; "
                           "give an FBP root folder or a list of (image raster, label raster) pairs.")
    if not scenes:
        raise FbpError("The training source is empty; give an FBP root folder or (image, label) raster pairs.")
    return scenes


def _source_kind(scenes: Sequence, image: str) -> tuple[str, float, str]:
    """(sensor name, gsd, description) of the training scenes."""
    from .fbp_dataset import FbpScene

    if all(isinstance(s, FbpScene) for s in scenes):
        return ("fbp8bit" if image == "8bit" else "gaofen2"), 4.0, f"Five-Billion-Pixels layout ({image} images)"
    profiles = {getattr(getattr(s, "profile", None), "name", None) for s in scenes}
    gsds = {round(float(getattr(getattr(s, "inp", None), "gsd", 0.0) or 0.0), 3) for s in scenes}
    sensor = profiles.pop() if len(profiles) == 1 else None
    gsd = gsds.pop() if len(gsds) == 1 else 0.0
    return sensor or "mixed", gsd or 4.0, "labelled rasters"


# ---- source training --------------------------------------------------------------------------------

def train_source(
    source,
    out: str | os.PathLike,
    *,
    architecture: str = "fbp_unet",
    smp_arch: str | None = None,
    encoder: str | None = None,
    arch_kwargs: dict | None = None,
    name: str | None = None,
    epochs: int = 120,
    iterations_per_epoch: int | None = None,
    batch_size: int = 16,
    patch: int = 512,
    lr: float = 0.005,
    momentum: float = 0.9,
    weight_decay: float = 1e-5,
    poly_power: float = 0.9,
    val_fraction: float = 0.1,
    val_patches: int = 500,
    class_aware: bool = False,
    class_power: float = 0.5,
    stats: str = "source",
    image: str = "8bit",
    sensor: str = "auto",
    class_mapping=None,
    working_gsd: float | None = None,
    device: str = "auto",
    amp: bool = True,
    resume: bool = True,
    memory_count: int = 256,
    memory_size: int = 256,
    seed: int = 0,
    progress=None,
    is_cancelled=None,
):
    """Train a model on labelled source data; writes ``out`` (best on validation mIoU), ``<stem>.last.fbpmodel``,
    ``<stem>.resume.pt`` (after every epoch) and ``<stem>.memory.npz`` (the source memory). Returns the best card.

    source: an FBP root folder, a list of (image, label) raster pairs, or opened scenes.
    stats: "source" (the fixed FBP statistics, as the reference) or "scene" (per-scene statistics).
    Cancelling keeps the files of the last finished epoch (resume from them) and nothing of the current one.
    """
    prog = Progress(progress, is_cancelled)
    out = Path(out)
    device = pick_device(device)
    use_amp = bool(amp and device.startswith("cuda"))
    prog(0.0, "Reading the labelled source scenes")
    scenes = open_labelled_source(source, image=image, sensor=sensor, class_mapping=class_mapping,
                                  label_cache=out.parent / ".fbp_label_cache", working_gsd=working_gsd)
    given = set(map(id, source)) if not isinstance(source, (str, os.PathLike)) else set()
    owned = [s for s in scenes if id(s) not in given]
    try:
        return _train(scenes, out, locals_=dict(
            architecture=architecture, smp_arch=smp_arch, encoder=encoder, arch_kwargs=arch_kwargs, name=name,
            epochs=epochs, iterations_per_epoch=iterations_per_epoch, batch_size=batch_size, patch=patch, lr=lr,
            momentum=momentum, weight_decay=weight_decay, poly_power=poly_power, val_fraction=val_fraction,
            val_patches=val_patches, class_aware=class_aware, class_power=class_power, stats=stats, image=image,
            resume=resume, memory_count=memory_count, memory_size=memory_size, seed=seed, device=device,
            use_amp=use_amp), prog=prog)
    finally:
        for s in owned:
            s.close()


def _train(scenes, out: Path, locals_: dict, prog: Progress):
    """The body of train_source once the scenes are open."""
    torch = import_torch()
    from ..io.normalize import FBP_SOURCE_STATS
    from ..models import build_model, input_multiple
    from ..models.card import ModelCard
    from ..models.fbpmodel import read_card, save_checkpoint
    from .losses import weighted_ce, weights_from_counts
    from .sampler import PatchSampler, make_regions
    from .source_memory import build_source_memory, memory_path, save_source_memory

    (architecture, smp_arch, encoder, arch_kwargs, name, epochs, iterations_per_epoch, batch_size, patch, lr,
     momentum, weight_decay, poly_power, val_fraction, val_patches, class_aware, class_power, stats, image,
     resume, memory_count, memory_size, seed, device, use_amp) = (locals_[k] for k in (
        "architecture", "smp_arch", "encoder", "arch_kwargs", "name", "epochs", "iterations_per_epoch",
        "batch_size", "patch", "lr", "momentum", "weight_decay", "poly_power", "val_fraction", "val_patches",
        "class_aware", "class_power", "stats", "image", "resume", "memory_count", "memory_size", "seed",
        "device", "use_amp"))
    train_regions, val_regions = make_regions(scenes, val_fraction, seed)
    sampler = PatchSampler(train_regions, patch, stats=stats, class_aware=class_aware, class_power=class_power,
                           augment=True, seed=seed)
    val_set = PatchSampler(val_regions or train_regions, patch, stats=stats, augment=False, seed=seed + 1)
    counts = sampler.class_totals.astype(np.int64)
    weights = torch.tensor(weights_from_counts(counts), dtype=torch.float32, device=device)

    sensor_name, gsd, description = _source_kind(scenes, image)
    card = ModelCard(name=name or Path(out).stem, architecture=architecture, smp_arch=smp_arch, encoder=encoder,
                     arch_kwargs=dict(arch_kwargs or {}), gsd=gsd, sensor=sensor_name,
                     stats=FBP_SOURCE_STATS if stats == "source" else None)
    torch.manual_seed(seed)  # the initial weights too are fixed by the seed (a run is repeatable)
    model = build_model(card).to(device)
    multiple = input_multiple(model)
    if patch % multiple:
        raise FbpError(f"The patch size {patch} is not a multiple of {multiple}, which this model needs; "
                       f"use e.g. {max(multiple, patch // multiple * multiple)}.")
    if iterations_per_epoch is None:
        n_patches = sum(_grid_count(r.scene.width, patch) * _grid_count(r.y1 - r.y0, patch) for r in train_regions)
        iterations_per_epoch = max(1, math.ceil(n_patches / batch_size))
    total = epochs * iterations_per_epoch
    optimizer = make_optimizer(model, lr, momentum, weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    config = {"architecture": architecture, "smp_arch": smp_arch, "encoder": encoder, "patch": patch,
              "batch_size": batch_size, "iterations_per_epoch": iterations_per_epoch, "stats": stats,
              "image": image, "train": [r.name for r in train_regions], "val": [r.name for r in val_regions]}
    state = {"epoch": 0, "iteration": 0, "best_miou": -1.0, "best_epoch": -1, "history": []}
    resume_file = companion(out, RESUME_SUFFIX)
    if resume and resume_file.is_file():
        saved = torch.load(str(resume_file), map_location="cpu", weights_only=True)
        old = json.loads(saved["config"])
        if {k: old.get(k) for k in config} != config:
            raise FbpError(f"The resume file {resume_file} belongs to a different training set-up "
                           f"({_diff(old, config)}); delete it or pass resume=False to start again.")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = {k: saved[k] for k in state}
        state["history"] = json.loads(saved["history"])
        prog(0.0, f"Resuming at epoch {state['epoch'] + 1} (iteration {state['iteration']})")

    val_windows = val_set.fixed_windows(val_patches, seed=seed + 12345)

    def val_batches():
        for i in range(0, len(val_windows), batch_size):
            imgs, labs = zip(*(val_set.read(*w, augment=False) for w in val_windows[i:i + batch_size]), strict=True)
            yield torch.from_numpy(np.stack(imgs)), torch.from_numpy(np.stack(labs).astype(np.int64))

    def make_card(kind: str, epoch_done: int, iteration: int, val_now: float) -> ModelCard:
        provenance = {
            "task": "source training",
            "trained_on": f"{description}: {len(train_regions)} training scene(s)",
            "train_scenes": [r.name for r in train_regions],
            "validation_scenes": [r.name for r in val_regions] or "none (validated on the training scenes)",
            "epochs": epoch_done, "epochs_planned": epochs, "iterations": iteration,
            "iterations_per_epoch": iterations_per_epoch, "batch_size": batch_size, "patch": patch,
            "optimizer": f"SGD nesterov momentum {momentum} weight decay {weight_decay}",
            "lr": lr, "lr_schedule": f"poly {poly_power} per iteration", "amp": use_amp, "device": device,
            "class_weights": "1/ln(1.02 + p_c) from the training labels",
            "class_aware_sampling": class_aware, "normalisation": stats, "seed": seed,
            "val_miou": state["best_miou"] if kind == "best" else val_now,
            "best_epoch": state["best_epoch"], "checkpoint": kind,
            "source_memory": memory_path(out).name,
        }
        return ModelCard(**{**card.to_dict(), "stats": card.stats, "provenance": provenance})

    model.train()
    t0 = time.monotonic()
    start_iter = state["iteration"]
    for epoch in range(state["epoch"], epochs):
        sampler.rng = np.random.default_rng([seed, epoch])
        for i in range(iterations_per_epoch):
            it = epoch * iterations_per_epoch + i
            for group in optimizer.param_groups:
                group["lr"] = poly_lr(lr, it, total, poly_power)
            x, y = sampler.batch(batch_size)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cuda", enabled=use_amp):
                logits = model(x)
            loss = weighted_ce(logits, y, weights)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            done = it + 1 - start_iter
            prog((it + 1) / (total + 1), f"Epoch {epoch + 1}/{epochs}, iteration {it + 1}/{total}, "
                 f"loss {float(loss.detach()):.4f}, {done / max(1e-9, time.monotonic() - t0):.2f} it/s")
        val_now, _cm = evaluate(model, val_batches(), device, use_amp)
        prog.check()
        state["iteration"] = (epoch + 1) * iterations_per_epoch
        state["epoch"] = epoch + 1
        state["history"].append({"epoch": epoch + 1, "val_miou": val_now, "loss": float(loss.detach())})
        improved = not math.isnan(val_now) and val_now > state["best_miou"]
        if improved:
            state["best_miou"], state["best_epoch"] = val_now, epoch + 1
        model.eval()
        save_checkpoint(last_path(out), model, make_card("last", epoch + 1, state["iteration"], val_now))
        if improved or not out.exists():
            save_checkpoint(out, model, make_card("best", epoch + 1, state["iteration"], val_now))
        model.train()
        atomic_torch_save({"epoch": state["epoch"], "iteration": state["iteration"],
                           "best_miou": float(state["best_miou"]), "best_epoch": int(state["best_epoch"]),
                           "history": json.dumps(state["history"]), "config": json.dumps(config),
                           "model": model.state_dict(), "optimizer": optimizer.state_dict()}, resume_file)
        prog((state["iteration"]) / (total + 1), f"Epoch {epoch + 1}/{epochs}: validation mIoU {val_now:.4f} "
             f"(best {state['best_miou']:.4f} at epoch {state['best_epoch']})")

    mem_prog = prog.stage(total / (total + 1), 1.0)
    memory = build_source_memory(train_regions, count=memory_count, size=min(memory_size, patch), stats=stats,
                                 seed=seed, progress=mem_prog)
    save_source_memory(memory_path(out), memory)
    prog(1.0, f"Trained {epochs} epoch(s); best validation mIoU {state['best_miou']:.4f}")
    return read_card(out)


def _grid_count(length: int, patch: int) -> int:
    return 1 if length <= patch else math.ceil((length - patch) / PATCH_STRIDE) + 1


def _diff(old: dict, new: dict) -> str:
    keys = [k for k in new if old.get(k) != new[k]]
    return "; ".join(f"{k}: {old.get(k)!r} then, {new[k]!r} now" for k in keys[:3])
