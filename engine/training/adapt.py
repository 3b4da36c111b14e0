"""Domain adaptation with Dynamic Pseudo-label Assignment (Tong et al. 2023), and quick adaptation to one
image.

Siamese DPA (with source data: an FBP root, labelled rasters, or the checkpoint's source memory): a source
batch and a target batch are concatenated along the batch axis, passed through ONE network in train mode
(BatchNorm over the mixed batch) and split; pseudo-labels are recomputed every iteration from the current
target logits with the growing share; L = CE_w(source) + CE_w(target, pseudo) (``losses.dpa_loss``).

Without any source data ("source-free"), the default is "bn+kl": BatchNorm statistics re-estimated on the
target first, then entropy-selected pseudo-labels with BatchNorm statistics frozen and a KL term to a frozen
copy of the (BN-adapted) source model, so the model cannot drift far from it. "bn" (statistics only) and
"pseudo" (plain self-training, BatchNorm in train mode) are available for comparison.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FbpError
from ..models.card import ModelCard, model_stem
from ..models.devices import pick_device
from ..progress import Progress
from ..torch_import import import_torch
from .common import Optimisation
from .config import DEFAULT_ITERATIONS, METHODS, AdaptOptions, configured

UNBOUNDED = 10**9  # "iterations" of a run bounded by time only
BN_METHODS = ("bn", "bn+kl", "bn+pseudo")  # those that re-estimate BatchNorm statistics on the target first
REJECTED = "the source model (the guard rejected the adaptation)"


# ---- BatchNorm ------------------------------------------------------------------------------------------

def bn_adapt(model, batches, device: str, target_share: float = 1.0) -> int:
    """Re-estimate every BatchNorm's running statistics from target batches (cumulative average). Returns
    #batches.

    ``target_share`` < 1 keeps part of the source statistics: mean and variance become
    (1 − s)·source + s·target, the prior of Schneider et al. (2020), "Improving robustness against common
    corruptions by covariate shift adaptation".
    """
    torch = import_torch()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    if not 0.0 <= target_share <= 1.0:
        raise FbpError(f"The share of target statistics must be in [0, 1], got {target_share}.")
    saved = [m.momentum for m in bns]
    source = [(m.running_mean.clone(), m.running_var.clone()) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    n = 0
    with torch.no_grad():
        for x in batches:
            model(x.to(device))
            n += 1
        for m, (mean, var) in zip(bns, source, strict=True):
            m.running_mean.mul_(target_share).add_(mean.to(m.running_mean.device), alpha=1.0 - target_share)
            m.running_var.mul_(target_share).add_(var.to(m.running_var.device), alpha=1.0 - target_share)
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
    model.eval()
    return n


def _freeze_bn(model) -> None:
    torch = import_torch()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def _bn_stage(model, target, opts: AdaptOptions, stage: Progress, device: str) -> int:
    n = max(1, opts.bn_batches)

    def batches():
        for k in range(n):
            stage(k / n, f"Re-estimating BatchNorm statistics on the target: batch {k + 1} of {n}")
            yield target.batch(opts.batch_size)[0]

    return bn_adapt(model, batches(), device, opts.bn_target_share)


# ---- the adaptation loop -------------------------------------------------------------------------------

def _method(requested: str, has_source: bool) -> str:
    """The method to run: 'auto' is Siamese DPA whenever source data is at hand, else bn+kl (the order the
    adaptation benchmark supports, bench/README.md)."""
    method = ("siamese" if has_source else "bn+kl") if requested == "auto" else requested
    if method not in METHODS:
        raise FbpError(f"The adaptation method {requested!r} is not known; use one of {', '.join(METHODS)}.")
    if method == "siamese" and not has_source:
        raise FbpError("Siamese adaptation needs source data (an FBP folder, "
                       "labelled rasters or a source memory); give one, or use a source-free method (bn+kl).")
    return method


class _Budget:
    """How many iterations run: ``iterations`` (default 100), or as many as fit in ``seconds``, re-estimated
    before every iteration from the time the earlier ones took. The clock starts when the budget is made."""

    def __init__(self, opts: AdaptOptions) -> None:
        self.planned = opts.iterations or DEFAULT_ITERATIONS
        if opts.iterations is None and opts.seconds is not None:
            self.planned = UNBOUNDED  # bounded by the time budget
        self.total = self.planned
        self.t0 = time.monotonic()
        self.deadline = None if opts.seconds is None else self.t0 + float(opts.seconds)

    def more(self, i: int) -> bool:
        """Whether iteration ``i`` (0-based) runs."""
        if i >= self.total:
            return False
        if self.deadline is not None:
            elapsed = time.monotonic() - self.t0
            if i > 0:
                if elapsed >= self.deadline - self.t0:
                    return False
                self.total = min(self.planned, max(i + 1, int(i * (self.deadline - self.t0) / elapsed)))
        return True

    def total_for(self, i: int) -> int:
        """The total the share and the learning rate of iteration ``i`` are computed with."""
        return self.total if self.total < UNBOUNDED else i + 2

    def fraction(self, done: int) -> float:
        return done / self.total if self.total < UNBOUNDED else 0.0

    def shown(self) -> int | str:
        return self.total if self.total < UNBOUNDED else "?"

    def seconds(self) -> float:
        return round(time.monotonic() - self.t0, 3)


def _resolved(opts: AdaptOptions) -> AdaptOptions:
    """``dpa-reference`` is Siamese DPA exactly as the authors: no teacher, no mixing, no class quota."""
    from .config import MIXES

    if opts.mix not in MIXES:
        raise FbpError(f"The mixing {opts.mix!r} is not known; use one of {', '.join(MIXES)}.")
    if opts.method == "dpa-reference":
        return replace(opts, method="siamese", teacher=0.0, mix="none", class_quota=False)
    return opts


def run_adaptation(model, target, source, weights, opts: AdaptOptions, prog: Progress, device: str) -> dict:
    """Adapt ``model`` in place. target: TargetSampler; source: callable n -> (x, y) tensors, or None.

    Returns what happened: iterations done, final share, method (with its teacher and mixing), seconds.
    """
    from .dpa import ratio_at_iteration
    from .teacher import MeanTeacher, frozen_copy

    torch = import_torch()
    requested = opts.method
    opts = _resolved(opts)
    method = _method(opts.method, source is not None)
    model.to(device)
    weights = weights.to(device)
    budget = _Budget(opts)
    info: dict[str, Any] = {"method": requested if requested == "dpa-reference" else method, "iterations": 0,
                            "final_pseudo_label_share": 0.0}
    if method in BN_METHODS:
        info["bn_batches"] = _bn_stage(model, target, opts, prog.stage(0.0, 0.1 if method != "bn" else 1.0),
                                       device)
        info["bn_target_share"] = opts.bn_target_share
        if method == "bn":
            info["seconds"] = budget.seconds()
            return info
        prog = prog.stage(0.1, 1.0)
    anchor = frozen_copy(model) if method == "bn+kl" else None
    teacher = MeanTeacher(model, opts.teacher) if opts.teacher and method != "tent" else None
    mix = opts.mix if method == "siamese" else "none"
    if teacher is not None:
        info["teacher"] = opts.teacher
    if mix != "none":
        info["mix"] = mix
    params = _bn_affine(model) if method == "tent" else None
    opt = Optimisation(model, lr=opts.lr, momentum=opts.momentum, weight_decay=opts.weight_decay,
                       device=device, amp=opts.amp, params=params)
    opt.schedule(budget.total_for, opts.poly_power)
    model.train()
    if method in ("bn+kl", "bn+pseudo"):
        _freeze_bn(model)  # keep the target statistics just estimated; small batches would make them noisy
    generator = torch.Generator().manual_seed(opts.seed)
    i, share, last_loss = 0, 0.0, float("nan")
    try:
        while budget.more(i):
            share = ratio_at_iteration(i, budget.total_for(i), opts.factor, opts.steps)
            opt.at(i)
            xt, vt = target.batch(opts.batch_size)
            xt, vt = xt.to(device), vt.to(device)
            opt.zero_grad()
            if method == "siamese":
                loss = _siamese_loss(model, opt, xt, vt, source, weights, share, opts, device, teacher, mix,
                                     generator)
            elif method == "tent":
                loss = _entropy_loss(model, opt, xt, vt)
            else:
                loss = _self_training_loss(model, opt, xt, vt, anchor, weights, share, opts, teacher)
            opt.step(loss)
            if teacher is not None:
                teacher.update(model)
            last_loss = float(loss.detach())
            i += 1
            prog(budget.fraction(i),
                 f"Adapting: iteration {i} of {budget.shown()}, "
                 + ("" if method == "tent" else f"pseudo-label share {share:.1%}, ")
                 + f"loss {last_loss:.4f}")
    finally:
        if params is not None:
            for p in model.parameters():
                p.requires_grad_(True)
    model.eval()
    info.update(iterations=i, final_pseudo_label_share=round(float(share), 6) if method != "tent" else 0.0,
                final_loss=last_loss, seconds=budget.seconds())
    return info


def _bn_affine(model) -> list:
    """TENT: only the BatchNorm layers' scale and shift are trained (the others need no gradient); BatchNorm
    normalises with each batch's own statistics (train mode)."""
    torch = import_torch()
    for p in model.parameters():
        p.requires_grad_(False)
    params = []
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.affine:
            for p in (m.weight, m.bias):
                p.requires_grad_(True)
                params.append(p)
    if not params:
        raise FbpError("TENT adapts the BatchNorm layers' scale and shift, and this model has none; "
                       "use bn+kl.")
    return params


def _pseudo_logits(model, opt: Optimisation, x, teacher, given=None):
    """The logits pseudo-labels come from: the teacher's, else ``given`` (the student's, detached), else a
    forward pass of the student without gradients."""
    torch = import_torch()
    if teacher is not None:
        with opt.autocast():
            return teacher.logits(x)
    if given is not None:
        return given.detach()
    with torch.no_grad(), opt.autocast():
        return model(x)


def _siamese_loss(model, opt: Optimisation, xt, vt, source, weights, share: float, opts: AdaptOptions,
                  device, teacher=None, mix: str = "none", generator=None):
    """One network over the concatenated source and target batches (BatchNorm over the mixed batch).

    With ``mix`` = classmix the target half of the batch is the ClassMix of source into target patches,
    labelled by the source labels and the target's pseudo-labels (from the teacher when there is one).
    """
    from .dpa import assign_pseudo_labels
    from .losses import dpa_loss
    from .mixing import class_mix

    torch = import_torch()
    xs, ys = source(opts.source_batch_size or opts.batch_size)
    xs, ys = xs.to(device), ys.to(device)
    pseudo = None  # the reference: from the student's logits of this very pass
    if teacher is not None or mix != "none":
        pseudo = assign_pseudo_labels(_pseudo_logits(model, opt, xt, teacher).float(), share,
                                      opts.class_quota, valid=vt)
        if mix != "none":
            xt, pseudo, _ = class_mix(xs, ys, xt, pseudo, generator)
    with opt.autocast():
        logits = model(torch.cat([xs, xt], dim=0))
    ls, lt = logits[: xs.shape[0]], logits[xs.shape[0]:]
    if pseudo is None:
        pseudo = assign_pseudo_labels(lt.detach(), share, opts.class_quota, valid=vt)
    return dpa_loss(ls, ys, lt, pseudo, weights)[0]


def _self_training_loss(model, opt: Optimisation, xt, vt, anchor, weights, share: float, opts: AdaptOptions,
                        teacher=None):
    """Source-free: the target's own pseudo-labels (the teacher's when there is one), plus the KL anchor to
    the frozen model when there is one."""
    from .dpa import assign_pseudo_labels
    from .losses import kl_anchor, weighted_ce

    torch = import_torch()
    with opt.autocast():
        lt = model(xt)
    pseudo = assign_pseudo_labels(_pseudo_logits(model, opt, xt, teacher, lt).float(), share,
                                  opts.class_quota, valid=vt)
    loss = weighted_ce(lt, pseudo, weights)
    if anchor is not None:
        with torch.no_grad(), opt.autocast():
            ref = anchor(xt)
        loss = loss + opts.kl_weight * kl_anchor(lt, ref, vt)
    return loss


def _entropy_loss(model, opt: Optimisation, xt, vt):
    """TENT (Wang et al. 2021): the mean normalised entropy of the predictions over valid pixels."""
    from .dpa import normalized_entropy

    with opt.autocast():
        lt = model(xt)
    ent = normalized_entropy(lt)
    valid = vt.to(ent.device, import_torch().bool)
    return ent[valid].mean() if bool(valid.any()) else ent.sum() * 0.0


# ---- source branches ------------------------------------------------------------------------------------

@dataclass
class _Source:
    """The source branch of a run: ``draw(n)`` -> (x, y) tensors (None when source-free), the class counts its
    weights come from, a description for the provenance, the patch size it imposes, the scenes it opened."""

    draw: Callable | None
    counts: list | None
    description: str
    patch: int | None = None
    scenes: list = field(default_factory=list)

    def close(self) -> None:
        for s in self.scenes:
            s.close()


def _memory_for(card, model_path: str | None) -> Path | None:
    """The source memory file recorded in the card or lying beside the checkpoint, if it exists."""
    from .source_memory import memory_path

    if not model_path:
        return None
    candidates = []
    recorded = card.provenance.get("source_memory") if isinstance(card.provenance, dict) else None
    if isinstance(recorded, str):
        candidates.append(Path(model_path).parent / recorded)
    candidates.append(memory_path(model_path))
    return next((c for c in candidates if c.is_file()), None)


def _open_source(source, card, model_path, opts: AdaptOptions, rng: np.random.Generator) -> _Source:
    """The source branch for ``source``: False/"none" (source-free), None (the model's source memory, if any),
    a ``.npz`` source memory, an FBP root or (image, label) pairs."""
    from .sampler import PatchSampler, make_regions
    from .source_memory import load_source_memory
    from .train import open_labelled_source

    if source is False or source == "none":
        return _Source(None, None, "none (source-free)")
    mem_file = None
    if source is None:
        mem_file = _memory_for(card, model_path)
        if mem_file is None:
            return _Source(None, None, "none (source-free: "
                                       "no source data given and no source memory beside the model)")
    elif isinstance(source, (str, os.PathLike)) and Path(source).is_file() and str(source).endswith(".npz"):
        mem_file = Path(source)
    if mem_file is not None:
        memory = load_source_memory(mem_file)
        patch = memory.size if opts.patch is None else min(opts.patch, memory.size)

        def draw(n):
            return memory.batch(n, rng, patch, augment_patches=opts.augment)

        return _Source(draw, memory.meta.get("source_class_counts"),
                       f"source memory {mem_file} ({len(memory)} patches of {memory.size} px)", patch)
    patch = opts.patch or 512
    scenes = open_labelled_source(source, label_cache=None)
    regions, _ = make_regions(scenes, 0.0, opts.seed)
    stats = "source" if card.stats is not None and getattr(card.stats, "source", "") == "fbp" else "scene"
    sampler = PatchSampler(regions, patch, stats=stats, augment=opts.augment, seed=opts.seed)
    where = source if isinstance(source, (str, os.PathLike)) else f"{len(scenes)} labelled raster(s)"
    return _Source(sampler.batch, list(sampler.class_totals.astype(int)), f"labelled source data: {where}",
                   patch,
                   scenes)


def _class_weights(counts):
    from ..classes import class_weights
    from .losses import weights_from_counts

    torch = import_torch()
    w = weights_from_counts(counts) if counts is not None else class_weights()
    return torch.tensor(w, dtype=torch.float32)


def _adapt_in_place(model, target, src: _Source, opts: AdaptOptions, prog: Progress, device: str) -> dict:
    """Seeded run_adaptation with the source branch's class weights, then the guard (``guard.py``): when it
    rejects the adaptation, the model's weights are put back as they were and ``info["used"]`` says so."""
    from . import guard

    import_torch().manual_seed(opts.seed)
    before = copy.deepcopy(model) if opts.guard else None
    info = run_adaptation(model, target, src.draw, _class_weights(src.counts), opts, prog, device)
    if before is not None:
        prog.check()
        verdict = guard.check(before.to(device), model, target, device, info.get("final_loss"))
        info["guard_verdict"] = verdict.to_dict()
        if not verdict.passed:
            model.load_state_dict(before.state_dict())
            info["used"] = REJECTED
        model.eval()
    return info


def _patch(src: _Source, opts: AdaptOptions, device: str) -> int:
    """The patch size: the source branch's, else the options', else 512 on a GPU and 256 on a CPU."""
    return src.patch or opts.patch or (512 if device.startswith("cuda") else 256)


# ---- public entries ---------------------------------------------------------------------------------

def adapt(model_spec: str | os.PathLike, targets, *, out: str | os.PathLike,
          config: AdaptOptions | None = None,
          source=None, sensor: str = "auto", stats: str = "scene", working_gsd: float | None = None,
          models_dir: str | None = None, name: str | None = None, progress=None, is_cancelled=None,
          **options) -> ModelCard:
    """Adapt a model to target image(s) without labels and save it to ``out`` (our format). Returns its card.

    model_spec: a checkpoint path or registered name. targets: a raster path, or a list of them (a list of
    Sentinel-2 band files counts as one image only when given inside a list: [[b2, b3, b4, b8]]).
    config: an AdaptOptions (iterations / epochs / seconds budget, method, ...); keyword ``options`` override
    its fields. source: an FBP root, (image, label) pairs, a ``.memory.npz`` file, None (= the checkpoint's
    source memory if present, else source-free) or False (force source-free).
    Cancelling (progress/is_cancelled) raises CancelledError and writes nothing.
    """
    from ..models.fbpmodel import save_checkpoint
    from ..models.loading import load_model
    from .sampler import TargetSampler

    opts = configured(AdaptOptions, config, options, "adaptation")
    prog = Progress(progress, is_cancelled)
    targets = [str(targets)] if isinstance(targets, (str, os.PathLike)) else [
        t if isinstance(t, (list, tuple)) else str(t) for t in targets]
    prog(0.0, "Loading the model")
    model, card, model_path = load_model(model_spec, models_dir)
    device = pick_device(opts.device)
    src = _open_source(source, card, model_path, opts, np.random.default_rng(opts.seed))
    try:
        patch = _patch(src, opts, device)
        target = TargetSampler.open(targets, sensor, patch, stats=stats, working_gsd=working_gsd,
                                    augment=opts.augment, seed=opts.seed)
        try:
            if opts.iterations is None and opts.epochs is not None:
                opts = replace(opts, iterations=_epoch_iterations(target, patch, opts))
            info = _adapt_in_place(model, target, src, opts, prog.stage(0.02, 0.98), device)
            prog.check()
            run = {"normalisation": f"per-image statistics ({stats})", "patch": patch, "device": device}
            new_card = _adapted_card(card, model_path, target, src, opts, {**run, **info},
                                     name or model_stem(out))
            prog(1.0, describe(info))
            return save_checkpoint(out, model.cpu(), new_card)
        finally:
            target.close()
    finally:
        src.close()


def _epoch_iterations(target, patch: int, opts: AdaptOptions) -> int:
    """``opts.epochs`` passes over the targets' patch grid (the reference cut target patches at a 384
    stride)."""
    from .sampler import PATCH_STRIDE_TARGET

    per_epoch = sum(math.ceil(max(1, i.width - patch) / PATCH_STRIDE_TARGET) *
                    math.ceil(max(1, i.height - patch) / PATCH_STRIDE_TARGET) for i in target.inputs)
    return opts.epochs * max(1, math.ceil(per_epoch / opts.batch_size))


def _adapted_card(card: ModelCard, model_path, target, src: _Source, opts: AdaptOptions, run: dict,
                  name: str) -> ModelCard:
    """The adapted model's card: the target's statistics and sensor (one target image), and the provenance
    (``run``: how it ran — normalisation, patch, device — and what run_adaptation reported)."""
    from ..io.normalize import Stats

    adapted_stats = None
    if len(target.inputs) == 1:
        mean, std = target.stats[0]
        adapted_stats = Stats(tuple(mean), tuple(std), f"target scene {Path(target.paths[0]).name}")
    base = card.provenance if isinstance(card.provenance, dict) else {}
    provenance = {
        "task": "domain adaptation (Dynamic Pseudo-label Assignment)",
        "trained_on": f"{base.get('trained_on', 'unknown')}; "
                      f"then adapted without labels to {len(target.inputs)} target image(s)",
        "adapted_from": str(model_path),
        "base_provenance": base,
        "adapted_to": [str(p) for p in target.paths],
        "target_sensors": [getattr(p, "name", None) for p in target.profiles],
        "target_gsd": [float(getattr(i, "gsd", 0.0) or 0.0) for i in target.inputs],
        "source_used": source_words(src.description, run.get("method")),
        "factor": opts.factor, "class_quota": opts.class_quota, "lr": opts.lr,
        "batch_size": opts.batch_size, "source_batch_size": opts.source_batch_size or opts.batch_size,
        "seed": opts.seed,
        "budget": {k: v for k, v in (("iterations", opts.iterations), ("seconds", opts.seconds),
                                     ("epochs", opts.epochs)) if v is not None},
        **run,
    }
    sensors = {getattr(p, "name", None) for p in target.profiles}
    return ModelCard(**{**card.to_dict(), "stats": adapted_stats or card.stats,
                        "sensor": sensors.pop() if len(sensors) == 1 else card.sensor,
                        "name": name, "provenance": provenance})


def quick_adapt_for_mapping(model, card: ModelCard, inp, stats, opts: AdaptOptions, progress: Progress, *,
                            model_path: str | None = None, source=None) -> tuple[Any, ModelCard]:
    """Quick adaptation inside mapping: (adapted model in eval mode, card with provenance), nothing written.

    ``inp`` is the open ModelInput and ``stats`` the Stats mapping normalises with, so adaptation sees exactly
    what prediction will; ``model_path`` finds the source memory beside the checkpoint (see ``adapt``'s
    source).
    """
    from .sampler import TargetSampler

    device = pick_device(opts.device)
    src = _open_source(source, card, model_path, opts, np.random.default_rng(opts.seed))
    try:
        patch = max(32, min(_patch(src, opts, device), _floor32(max(inp.width, inp.height))))
        target = TargetSampler([inp], [(stats.mean, stats.std)], patch, augment=opts.augment, seed=opts.seed)
        info = _adapt_in_place(model, target, src, opts, progress, device)
    finally:
        src.close()
    model = model.cpu().eval()
    provenance = dict(card.provenance) if isinstance(card.provenance, dict) else {}
    provenance["quick_adaptation"] = {"image": str(getattr(inp, "path", "")),
                                      "source_used": source_words(src.description, info.get("method")),
                                      "patch": patch, **{k: v for k,
                                                         v in asdict(opts).items() if v is not None},
                                      **info}
    return model, ModelCard(**{**card.to_dict(), "stats": card.stats, "provenance": provenance})


def source_words(description: str, method: str | None) -> str:
    """What the run took from its source branch: all of it for Siamese DPA; for a source-free method only the
    class counts of a source memory or dataset (its class weights), never its patches."""
    if method in ("siamese", "dpa-reference") or description.startswith("none"):
        return description
    return f"only the class counts (for the class weights) of {description}; {method} uses no source patches"


def describe(info: dict | None) -> str:
    """What an adaptation did, in words, from what it recorded (its provenance entry): for the command line,
    the Processing log and the panel."""
    if not info:
        return "no adaptation"
    share = float(info.get("final_pseudo_label_share", 0.0) or 0.0)
    words = (f"{info.get('method', '?')}, {info.get('iterations', 0)} iteration(s), final pseudo-label share "
             f"{share:.1%}")
    if info.get("source_used"):
        words += f"; source data: {info['source_used']}"
    verdict = info.get("guard_verdict")
    if isinstance(verdict, dict) and not verdict.get("passed", True):
        words += f". {verdict.get('sentence', 'The guard rejected the adaptation.')}"
    return words


def _floor32(v: int) -> int:
    return max(32, v // 32 * 32)
