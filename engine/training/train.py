"""Source training with the reference recipe (TrainConfig's defaults), resumable, with a source memory beside
the model: class-weighted cross-entropy (weights from the training labels, ignore 0), validation mIoU each
epoch, the best and the last checkpoints with full provenance, a resume file after every epoch.
"""

from __future__ import annotations

import dataclasses
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
from ..io.normalize import FBP_SOURCE_STATS
from ..models import build_model, input_multiple
from ..models.card import EXTENSION, ModelCard, companion
from ..models.devices import pick_device
from ..models.fbpmodel import read_card, save_checkpoint
from ..progress import Progress
from ..torch_import import import_torch
from .common import Optimisation
from .config import TrainConfig, configured
from .sampler import PatchSampler, make_regions
from .source_memory import build_source_memory, memory_path, save_source_memory

PATCH_STRIDE = 384  # the reference cut 512 windows at stride 384: one epoch covers that many patches
RESUME_SUFFIX = ".resume.pt"
LAST_SUFFIX = ".last"


# ---- validation -----------------------------------------------------------------------------------

def confusion(pred: np.ndarray, ref: np.ndarray, n: int = NUM_OUTPUTS) -> np.ndarray:
    """Confusion matrix (reference rows, prediction columns) over pixels whose reference label > 0."""
    from ..assessment.metrics import ConfusionMatrix

    cm = ConfusionMatrix(n - 1)
    cm.add(pred, ref)
    return cm.matrix


def miou(cm: np.ndarray) -> float:
    """Mean IoU over the classes present in the reference (assessment.metrics, the reference code's
    convention)."""
    from ..assessment.metrics import scores

    value = scores(cm)["miou_present"]
    return float("nan") if value is None else float(value)


def predict_classes(logits) -> Any:
    """argmax over channels 1..24 (channel 0 never wins)."""
    return logits[:, 1:].argmax(dim=1) + 1


def validate(model, batches, device: str, amp: bool = False) -> tuple[float, np.ndarray]:
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


def last_path(out: str | os.PathLike) -> Path:
    """The last epoch's checkpoint beside the best one: ``model.fbpmodel`` -> ``model.last.fbpmodel``."""
    return companion(out, LAST_SUFFIX + EXTENSION)


# ---- opening labelled sources ----------------------------------------------------------------------

def open_labelled_source(source, *, image: str = "8bit", sensor: str = "auto", class_mapping=None,
                         label_cache: str | os.PathLike | None = None,
                         working_gsd: float | None = None) -> list:
    """Scenes from an FBP root, a list of (image, label) pairs, or already opened scene objects."""
    from .fbp_dataset import is_fbp_root, open_fbp
    from .labelled_data import LabelledRaster

    if isinstance(source, (str, os.PathLike)):
        if not is_fbp_root(source):
            raise FbpError(f"{source} is not a Five-Billion-Pixels folder (no Annotation__index/ inside); "
                           "give the dataset root, or (image, label) raster pairs.")
        return open_fbp(source, image=image, label_cache=label_cache)
    scenes = []
    for item in source:
        if hasattr(item, "read") and hasattr(item, "label_window"):
            scenes.append(item)
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            scenes.append(LabelledRaster(item[0], item[1], sensor=sensor, class_mapping=class_mapping,
                                         working_gsd=working_gsd))
        else:
            raise FbpError(f"The training source entry {item!r} is neither an (image, "
                           "label) pair nor a scene; give an FBP root folder or a list of (image raster, "
                           "label raster) pairs.")
    if not scenes:
        raise FbpError("The training source is empty; "
                       "give an FBP root folder or (image, label) raster pairs.")
    return scenes


def _source_kind(scenes: Sequence, image: str) -> tuple[str, float, str]:
    """(sensor name, gsd, description) of the training scenes."""
    from .fbp_dataset import FbpScene, generated_note

    if all(isinstance(s, FbpScene) for s in scenes):
        sensor = "fbp8bit" if image == "8bit" else "gaofen2"
        notes = {generated_note(s.files.label.parent.parent) for s in scenes} - {None}
        if notes:  # the demo's generated scenes: never called Five-Billion-Pixels data
            said = "; ".join(sorted(notes))
            return sensor, 4.0, (f"generated data in the Five-Billion-Pixels layout, not real imagery "
                                 f"({said}; {image} images)")
        return sensor, 4.0, f"Five-Billion-Pixels layout ({image} images)"
    profiles = {getattr(getattr(s, "profile", None), "name", None) for s in scenes}
    gsds = {round(float(getattr(getattr(s, "inp", None), "gsd", 0.0) or 0.0), 3) for s in scenes}
    sensor = profiles.pop() if len(profiles) == 1 else None
    gsd = gsds.pop() if len(gsds) == 1 else 0.0
    return sensor or "mixed", gsd or 4.0, "labelled rasters"


# ---- source training --------------------------------------------------------------------------------

def trained_words(provenance: dict) -> str:
    """One sentence on a finished source training, from the kept (best) checkpoint's provenance: the epochs
    run and which of them was kept, e.g. "Trained 6 epoch(s) of 20 iteration(s); kept epoch 4, the best on
    validation (mIoU 0.2514)"."""
    p = provenance if isinstance(provenance, dict) else {}
    miou = p.get("val_miou")
    words = f"Trained {p.get('epochs_planned', p.get('epochs'))} epoch(s)"
    if p.get("iterations_per_epoch"):
        words += f" of {p['iterations_per_epoch']} iteration(s)"
    return words + (f"; kept epoch {p.get('best_epoch')}, the best on validation "
                    f"(mIoU {miou:.4f})" if isinstance(miou, (int, float)) and p.get("best_epoch") else
                    "; kept the last epoch (no validation score)")


def train_source(source, out: str | os.PathLike, config: TrainConfig | None = None, *, progress=None,
                 is_cancelled=None, **overrides) -> ModelCard:
    """Train a model on labelled source data; writes ``out`` (best on validation mIoU),
    ``<stem>.last.fbpmodel``, ``<stem>.resume.pt`` (after every epoch) and ``<stem>.memory.npz`` (the source
    memory). Returns the best card.

    source: an FBP root folder, a list of (image, label) raster pairs, or opened scenes. config: a TrainConfig
    (default: the reference recipe, normalised per scene); keyword ``overrides`` of its fields are applied
    on top.
    Cancelling keeps the files of the last finished epoch (resume from them) and nothing of the current one.
    """
    cfg = configured(TrainConfig, config, overrides, "training")
    prog = Progress(progress, is_cancelled)
    out = Path(out)
    device = pick_device(cfg.device)
    prog(0.0, "Reading the labelled source scenes")
    scenes = open_labelled_source(source, image=cfg.image, sensor=cfg.sensor, class_mapping=cfg.class_mapping,
                                  label_cache=out.parent / ".fbp_label_cache", working_gsd=cfg.working_gsd)
    given = set(map(id, source)) if not isinstance(source, (str, os.PathLike)) else set()
    try:
        return _SourceTraining(scenes, out, cfg, device, prog).run()
    finally:
        for s in scenes:
            if id(s) not in given:
                s.close()


class _SourceTraining:
    """One source training run once its scenes are open: the data, the model and its card, the optimisation
    and the run's state (epoch, iteration, best validation mIoU, history), and the steps of ``run``."""

    def __init__(self, scenes, out: Path, cfg: TrainConfig, device: str, prog: Progress) -> None:
        torch = import_torch()
        self.torch, self.out, self.cfg, self.device, self.prog = torch, out, cfg, device, prog
        self.train_regions, self.val_regions = make_regions(scenes, cfg.val_fraction, cfg.seed)
        self.sampler = PatchSampler(self.train_regions, cfg.patch, stats=cfg.stats,
                                    class_aware=cfg.class_aware,
                                    class_power=cfg.class_power, augment=True, seed=cfg.seed)
        self.val_set = PatchSampler(self.val_regions or self.train_regions, cfg.patch, stats=cfg.stats,
                                    augment=False, seed=cfg.seed + 1)
        from .losses import weighted_ce, weights_from_counts  # torch modules: imported when training starts

        self.loss = weighted_ce
        counts = self.sampler.class_totals.astype(np.int64)
        self.weights = torch.tensor(weights_from_counts(counts), dtype=torch.float32, device=device)
        self.model, self.card, self.description = self._model(scenes)
        self.per_epoch = cfg.iterations_per_epoch or self._one_pass()
        self.total = cfg.epochs * self.per_epoch
        self.opt = Optimisation(self.model, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                                device=device, amp=cfg.amp)
        self.setup = {"architecture": cfg.architecture, "smp_arch": cfg.smp_arch, "encoder": cfg.encoder,
                      "patch": cfg.patch, "batch_size": cfg.batch_size,
                      "iterations_per_epoch": self.per_epoch,
                      "stats": cfg.stats, "image": cfg.image, "train": [r.name for r in self.train_regions],
                      # what a resume file must have been made with
                      "val": [r.name for r in self.val_regions]}
        self.state = {"epoch": 0, "iteration": 0, "best_miou": -1.0, "best_epoch": -1, "history": []}
        self.resume_file = companion(out, RESUME_SUFFIX)
        if cfg.resume and self.resume_file.is_file():
            self._resume()
        self.opt.schedule(lambda _i: self.total, cfg.poly_power, start=self.state["iteration"])
        self.val_windows = self.val_set.fixed_windows(cfg.val_patches, seed=cfg.seed + 12345)

    def run(self) -> ModelCard:
        self.model.train()
        self.t0, self.start = time.monotonic(), self.state["iteration"]
        for epoch in range(self.state["epoch"], self.cfg.epochs):
            loss = self._train_epoch(epoch)
            val_now, _cm = validate(self.model, self._val_batches(), self.device, self.opt.amp)
            self.prog.check()
            self._end_epoch(epoch, val_now, loss)
        self._save_source_memory()
        card = read_card(self.out)
        self.prog(1.0, trained_words(card.provenance))
        return card

    # ---- set-up

    def _model(self, scenes) -> tuple[Any, ModelCard, str]:
        """The untrained network (its weights fixed by the seed), its card, and what it is trained on."""
        cfg = self.cfg
        sensor, gsd, description = _source_kind(scenes, cfg.image)
        card = ModelCard(name=cfg.name or self.out.stem, architecture=cfg.architecture, smp_arch=cfg.smp_arch,
                         encoder=cfg.encoder, arch_kwargs=dict(cfg.arch_kwargs or {}), gsd=gsd, sensor=sensor,
                         stats=FBP_SOURCE_STATS if cfg.stats == "source" else None)
        # the initial weights too are fixed by the seed (a run is repeatable)
        self.torch.manual_seed(cfg.seed)
        model = build_model(card).to(self.device)
        multiple = input_multiple(model)
        if cfg.patch % multiple:
            raise FbpError(f"The patch size {cfg.patch} is not a multiple of {multiple}, "
                           "which this model needs; use e.g. "
                           f"{max(multiple, cfg.patch // multiple * multiple)}.")
        return model, card, description

    def _one_pass(self) -> int:
        """Iterations per epoch of one pass over the training regions' patch grid (stride PATCH_STRIDE)."""
        patch = self.cfg.patch
        n_patches = sum(_grid_count(r.scene.width, patch) * _grid_count(r.y1 - r.y0, patch)
                        for r in self.train_regions)
        return max(1, math.ceil(n_patches / self.cfg.batch_size))

    def _resume(self) -> None:
        saved = self.torch.load(str(self.resume_file), map_location="cpu", weights_only=True)
        old = json.loads(saved["config"])
        if {k: old.get(k) for k in self.setup} != self.setup:
            raise FbpError(f"The resume file {self.resume_file} belongs to a different training set-up "
                           f"({_diff(old, self.setup)}); give the settings it was started with to continue "
                           "it (e.g. --stats source for a run started before per-scene statistics became "
                           "the default), or delete it or pass resume=False to start again.")
        self.model.load_state_dict(saved["model"])
        self.opt.optimizer.load_state_dict(saved["optimizer"])
        self.state = {k: saved[k] for k in self.state}
        self.state["history"] = json.loads(saved["history"])
        self.prog(0.0, f"Resuming at epoch {self.state['epoch'] + 1} (iteration {self.state['iteration']})")

    # ---- an epoch

    def _train_epoch(self, epoch: int):
        """The iterations of one epoch; returns the last iteration's loss."""
        cfg, opt = self.cfg, self.opt
        self.sampler.rng = np.random.default_rng([cfg.seed, epoch])
        for i in range(self.per_epoch):
            it = epoch * self.per_epoch + i
            opt.at(it)
            x, y = self.sampler.batch(cfg.batch_size)
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            opt.zero_grad()
            with opt.autocast():
                logits = self.model(x)
            loss = self.loss(logits, y, self.weights)
            opt.step(loss)
            speed = (it + 1 - self.start) / max(1e-9, time.monotonic() - self.t0)
            self.prog((it + 1) / (self.total + 1), f"Epoch {epoch + 1}/{cfg.epochs}, "
                                                   f"iteration {it + 1}/{self.total}, "
                                                   f"loss {float(loss.detach()):.4f}, {speed:.2f} it/s")
        return loss

    def _val_batches(self):
        torch, n = self.torch, self.cfg.batch_size
        for i in range(0, len(self.val_windows), n):
            imgs, labs = zip(*(self.val_set.read(*w, augment=False) for w in self.val_windows[i:i + n]),
                             strict=True)
            yield torch.from_numpy(np.stack(imgs)), torch.from_numpy(np.stack(labs).astype(np.int64))

    def _end_epoch(self, epoch: int, val_now: float, loss) -> None:
        """Record the epoch, write the last (and, if better, the best) checkpoint and the resume file."""
        state = self.state
        state["iteration"] = (epoch + 1) * self.per_epoch
        state["epoch"] = epoch + 1
        state["history"].append({"epoch": epoch + 1, "val_miou": val_now, "loss": float(loss.detach())})
        improved = not math.isnan(val_now) and val_now > state["best_miou"]
        if improved:
            state["best_miou"], state["best_epoch"] = val_now, epoch + 1
        self.model.eval()
        save_checkpoint(last_path(self.out), self.model, self._card("last", val_now))
        if improved or not self.out.exists():
            save_checkpoint(self.out, self.model, self._card("best", val_now))
        self.model.train()
        with atomic_path(self.resume_file) as tmp:
            self.torch.save({"epoch": state["epoch"], "iteration": state["iteration"],
                             "best_miou": float(state["best_miou"]), "best_epoch": int(state["best_epoch"]),
                             "history": json.dumps(state["history"]), "config": json.dumps(self.setup),
                             "model": self.model.state_dict(), "optimizer": self.opt.optimizer.state_dict()},
                            tmp)
        self.prog(state["iteration"] / (self.total + 1), f"Epoch {epoch + 1}/{self.cfg.epochs}: "
                                                         f"validation mIoU {val_now:.4f} "
                                                         f"(best {state['best_miou']:.4f} at epoch "
                                                         f"{state['best_epoch']})")

    def _card(self, kind: str, val_now: float) -> ModelCard:
        """The card of the checkpoint written now ("best" or "last") with the run's provenance."""
        cfg, state = self.cfg, self.state
        provenance = {
            "task": "source training",
            "trained_on": f"{self.description}: {len(self.train_regions)} training scene(s)",
            "train_scenes": [r.name for r in self.train_regions],
            "validation_scenes": [r.name for r in self.val_regions] or "none (validated on "
                                                                       "the training scenes)",
            "epochs": state["epoch"], "epochs_planned": cfg.epochs, "iterations": state["iteration"],
            "iterations_per_epoch": self.per_epoch, "batch_size": cfg.batch_size, "patch": cfg.patch,
            "optimizer": f"SGD nesterov momentum {cfg.momentum} weight decay {cfg.weight_decay}",
            "lr": cfg.lr, "lr_schedule": f"poly {cfg.poly_power} per iteration", "amp": self.opt.amp,
            "device": self.device, "class_weights": "1/ln(1.02 + p_c) from the training labels",
            "class_aware_sampling": cfg.class_aware, "normalisation": cfg.stats, "seed": cfg.seed,
            "val_miou": state["best_miou"] if kind == "best" else val_now,
            "best_epoch": state["best_epoch"], "checkpoint": kind,
            "source_memory": memory_path(self.out).name,
        }
        return dataclasses.replace(self.card, provenance=provenance)

    def _save_source_memory(self) -> None:
        cfg = self.cfg
        memory = build_source_memory(self.train_regions, count=cfg.memory_count, size=min(cfg.memory_size,
                                                                                          cfg.patch),
                                     stats=cfg.stats, seed=cfg.seed,
                                     progress=self.prog.stage(self.total / (self.total + 1), 1.0))
        save_source_memory(memory_path(self.out), memory)


def _grid_count(length: int, patch: int) -> int:
    return 1 if length <= patch else math.ceil((length - patch) / PATCH_STRIDE) + 1


def _diff(old: dict, new: dict) -> str:
    keys = [k for k in new if old.get(k) != new[k]]
    return "; ".join(f"{k}: {old.get(k)!r} then, {new[k]!r} now" for k in keys[:3])
