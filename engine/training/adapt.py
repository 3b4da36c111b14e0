"""Domain adaptation with Dynamic Pseudo-label Assignment (fbp.md §3), and quick adaptation to one image.

Siamese DPA (with source data: an FBP root, labelled rasters, or the checkpoint's source memory): a source
batch and a target batch are concatenated along the batch axis, passed through ONE network in train mode
(BatchNorm over the mixed batch) and split; pseudo-labels are recomputed every iteration from the current
target logits with the growing share; L = CE_w(source) + CE_w(target, pseudo).

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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FbpError
from ..models.torch_import import import_torch
from ..progress import Progress

DEFAULT_ITERATIONS = 100
METHODS = ("auto", "siamese", "bn+kl", "bn", "pseudo", "bn+pseudo")


@dataclass
class AdaptOptions:
    """Settings of one adaptation run (see ``adapt``)."""

    iterations: int | None = None
    epochs: int | None = None
    seconds: float | None = None
    factor: float = 0.5
    class_quota: float | bool = False
    steps: int | None = None  # virtual epochs the schedule is cut into (None: the share grows every iteration)
    batch_size: int = 4  # target patches per iteration
    source_batch_size: int | None = None  # None: same as batch_size (the reference: 16 + 16)
    patch: int | None = None  # None: the source memory's patch size, else 512 on a GPU and 256 on a CPU
    lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 1e-5
    poly_power: float = 0.9
    method: str = "auto"
    kl_weight: float = 1.0
    bn_batches: int = 8
    augment: bool = True
    amp: bool = True
    seed: int = 0
    device: str = "auto"


# ---- the adaptation loop -------------------------------------------------------------------------------

def bn_adapt(model, batches, device: str) -> int:
    """Re-estimate every BatchNorm's running statistics from target batches (cumulative average). Returns #batches."""
    torch = import_torch()
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return 0
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    n = 0
    with torch.no_grad():
        for x in batches:
            model(x.to(device))
            n += 1
    for m, mom in zip(bns, saved, strict=True):
        m.momentum = mom
    model.eval()
    return n


def _freeze_bn(model) -> None:
    torch = import_torch()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def run_adaptation(model, target, source, weights, opts: AdaptOptions, prog: Progress, device: str) -> dict:
    """Adapt ``model`` in place. target: TargetSampler; source: callable n -> (x, y) tensors, or None.

    Returns what happened: iterations done, final share, method, seconds.
    """
    torch = import_torch()
    from .common import make_optimizer, poly_lr
    from .dpa import assign_pseudo_labels, ratio_at_iteration
    from .losses import kl_anchor, weighted_ce

    method = opts.method
    if method == "auto":
        # Measured on generated domain-shift data, 3 seeds (bench/bench_adaptation.py): Siamese with the
        # source memory +5.1 points of target mIoU on average (never worse), source-free bn+kl +2.8 (one
        # seed worse). So: Siamese whenever source data (a dataset or the memory) is at hand, else bn+kl.
        method = "siamese" if source is not None else "bn+kl"
    if method not in METHODS:
        raise FbpError(f"The adaptation method {opts.method!r} is not known; use one of {', '.join(METHODS)}.")
    if method == "siamese" and source is None:
        raise FbpError("Siamese adaptation needs source data (an FBP folder, labelled rasters or a source memory); "
                       "give one, or use a source-free method (bn+kl).")
    model.to(device)
    weights = weights.to(device)
    use_amp = bool(opts.amp and device.startswith("cuda"))
    planned = opts.iterations or DEFAULT_ITERATIONS
    if opts.iterations is None and opts.seconds is not None:
        planned = 10**9  # bounded by the time budget
    t0 = time.monotonic()
    deadline = None if opts.seconds is None else t0 + float(opts.seconds)
    info: dict[str, Any] = {"method": method, "iterations": 0, "final_pseudo_label_share": 0.0}
    bs_t = opts.batch_size
    bs_s = opts.source_batch_size or opts.batch_size

    if method in ("bn", "bn+kl", "bn+pseudo"):
        stage = prog.stage(0.0, 0.1 if method != "bn" else 1.0)
        n = max(1, opts.bn_batches)

        def batches():
            for k in range(n):
                stage(k / n, f"Re-estimating BatchNorm statistics on the target: batch {k + 1} of {n}")
                yield target.batch(bs_t)[0]

        info["bn_batches"] = bn_adapt(model, batches(), device)
        if method == "bn":
            info["seconds"] = round(time.monotonic() - t0, 3)
            return info
        prog = prog.stage(0.1, 1.0)
    anchor = None
    if method == "bn+kl":
        anchor = copy.deepcopy(model).eval()
        for p in anchor.parameters():
            p.requires_grad_(False)
    optimizer = make_optimizer(model, opts.lr, opts.momentum, opts.weight_decay)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    model.train()
    if method in ("bn+kl", "bn+pseudo"):
        _freeze_bn(model)  # keep the target statistics just estimated; small batches would make them noisy
    i, share, last_loss = 0, 0.0, float("nan")
    total = planned
    while i < total:
        if deadline is not None:
            elapsed = time.monotonic() - t0
            if elapsed >= deadline - t0 and i > 0:
                break
            if i > 0:
                total = min(planned, max(i + 1, int(i * (deadline - t0) / elapsed)))
        share = ratio_at_iteration(i, total if total < 10**9 else i + 2, opts.factor, opts.steps)
        for group in optimizer.param_groups:
            group["lr"] = poly_lr(opts.lr, i, total if total < 10**9 else i + 2, opts.poly_power)
        xt, vt = target.batch(bs_t)
        xt, vt = xt.to(device), vt.to(device)
        optimizer.zero_grad(set_to_none=True)
        if source is not None and method == "siamese":
            xs, ys = source(bs_s)
            xs, ys = xs.to(device), ys.to(device)
            with torch.autocast("cuda", enabled=use_amp):
                logits = model(torch.cat([xs, xt], dim=0))  # one network, BN over the mixed batch
            ls, lt = logits[: xs.shape[0]], logits[xs.shape[0]:]
            pseudo = assign_pseudo_labels(lt.detach(), share, opts.class_quota, valid=vt)
            loss_s = weighted_ce(ls, ys, weights)
            loss_t = weighted_ce(lt, pseudo, weights)
            loss = loss_s + loss_t
        else:
            with torch.autocast("cuda", enabled=use_amp):
                lt = model(xt)
            pseudo = assign_pseudo_labels(lt.detach(), share, opts.class_quota, valid=vt)
            loss = weighted_ce(lt, pseudo, weights)
            if anchor is not None:
                with torch.no_grad(), torch.autocast("cuda", enabled=use_amp):
                    ref = anchor(xt)
                loss = loss + opts.kl_weight * kl_anchor(lt, ref, vt)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        last_loss = float(loss.detach())
        i += 1
        shown = total if total < 10**9 else "?"
        prog(i / total if total < 10**9 else 0.0,
             f"Adapting: iteration {i} of {shown}, pseudo-label share {share:.1%}, loss {last_loss:.4f}")
    model.eval()
    info.update(iterations=i, final_pseudo_label_share=round(float(share), 6), final_loss=last_loss,
                seconds=round(time.monotonic() - t0, 3))
    return info


# ---- source branches ------------------------------------------------------------------------------------

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


def _open_source(source, card, model_path, opts: AdaptOptions, rng: np.random.Generator):
    """(callable n -> (x, y) or None, class counts or None, description, patch size or None)."""
    from .sampler import PatchSampler, make_regions
    from .source_memory import load_source_memory
    from .train import open_labelled_source

    if source is False or source == "none":
        return None, None, "none (source-free)", None, []
    mem_file = None
    if source is None:
        mem_file = _memory_for(card, model_path)
        if mem_file is None:
            return None, None, "none (source-free: no source data given and no source memory beside the model)", \
                None, []
    elif isinstance(source, (str, os.PathLike)) and Path(source).is_file() and str(source).endswith(".npz"):
        mem_file = Path(source)
    if mem_file is not None:
        memory = load_source_memory(mem_file)
        counts = memory.meta.get("source_class_counts")
        patch = memory.size if opts.patch is None else min(opts.patch, memory.size)

        def draw(n):
            return memory.batch(n, rng, patch, augment_patches=opts.augment)

        return draw, counts, f"source memory {mem_file} ({len(memory)} patches of {memory.size} px)", patch, []
    patch = opts.patch or 512
    scenes = open_labelled_source(source, label_cache=None)
    regions, _ = make_regions(scenes, 0.0, opts.seed)
    stats = "source" if card.stats is not None and getattr(card.stats, "source", "") == "fbp" else "scene"
    sampler = PatchSampler(regions, patch, stats=stats, augment=opts.augment, seed=opts.seed)
    where = source if isinstance(source, (str, os.PathLike)) else f"{len(scenes)} labelled raster(s)"
    return sampler.batch, list(sampler.class_totals.astype(int)), f"labelled source data: {where}", patch, scenes


def _weights(counts, torch):
    from ..classes import class_weights
    from .losses import weights_from_counts

    w = weights_from_counts(counts) if counts is not None else class_weights()
    return torch.tensor(w, dtype=torch.float32)


# ---- public entries ---------------------------------------------------------------------------------

def adapt(model_spec: str | os.PathLike, targets, *, source=None, out: str | os.PathLike, sensor: str = "auto",
          stats: str = "scene", working_gsd: float | None = None, models_dir: str | None = None,
          name: str | None = None, progress=None, is_cancelled=None, **options) -> Any:
    """Adapt a model to target image(s) without labels and save it to ``out`` (our format). Returns its card.

    model_spec: a checkpoint path or registered name. targets: a raster path, or a list of them (a list of
    Sentinel-2 band files counts as one image only when given inside a list: [[b2, b3, b4, b8]]).
    source: an FBP root, (image, label) pairs, a ``.memory.npz`` file, None (= the checkpoint's source memory
    if present, else source-free) or False (force source-free).
    options: fields of AdaptOptions — iterations / epochs / seconds budget, factor (0.5), class_quota (False),
    batch_size, source_batch_size, patch, lr, method ("auto", "siamese", "bn+kl", "bn", "pseudo"), device, ...
    Cancelling (progress/is_cancelled) raises Cancelled and writes nothing.
    """
    torch = import_torch()
    from ..io.normalize import Stats
    from ..models.card import ModelCard
    from ..models.devices import pick_device
    from ..models.fbpmodel import save_checkpoint
    from ..models.loading import load_model
    from .sampler import PATCH_STRIDE_TARGET, TargetSampler

    unknown = set(options) - set(AdaptOptions.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown adaptation option(s): {', '.join(sorted(unknown))}")
    opts = AdaptOptions(**options)
    prog = Progress(progress, is_cancelled)
    out = Path(out)
    if isinstance(targets, (str, os.PathLike)):
        targets = [str(targets)]
    targets = [t if isinstance(t, (list, tuple)) else str(t) for t in targets]
    prog(0.0, "Loading the model")
    model, card, model_path = load_model(model_spec, models_dir)
    device = pick_device(opts.device)
    rng = np.random.default_rng(opts.seed)
    src_draw, counts, src_desc, src_patch, src_scenes = _open_source(source, card, model_path, opts, rng)
    patch = src_patch or opts.patch or (512 if device.startswith("cuda") else 256)
    target = TargetSampler.open(targets, sensor, patch, stats=stats, working_gsd=working_gsd,
                                augment=opts.augment, seed=opts.seed)
    try:
        if opts.iterations is None and opts.epochs is not None:
            per_epoch = sum(math.ceil(max(1, i.width - patch) / PATCH_STRIDE_TARGET) *
                            math.ceil(max(1, i.height - patch) / PATCH_STRIDE_TARGET) for i in target.inputs)
            opts.iterations = opts.epochs * max(1, math.ceil(per_epoch / opts.batch_size))
        torch.manual_seed(opts.seed)
        info = run_adaptation(model, target, src_draw, _weights(counts, torch), opts, prog.stage(0.02, 0.98),
                              device)
        prog.check()
        single = len(target.inputs) == 1
        adapted_stats = None
        if single:
            mean, std = target.stats[0]
            adapted_stats = Stats(tuple(mean), tuple(std), f"target scene {Path(target.paths[0]).name}")
        base = card.provenance if isinstance(card.provenance, dict) else {}
        provenance = {
            "task": "domain adaptation (Dynamic Pseudo-label Assignment)",
            "trained_on": f"{base.get('trained_on', 'unknown')}; then adapted without labels to "
                          f"{len(target.inputs)} target image(s)",
            "adapted_from": str(model_path),
            "base_provenance": base,
            "adapted_to": [str(p) for p in target.paths],
            "target_sensors": [getattr(p, "name", None) for p in target.profiles],
            "target_gsd": [float(getattr(i, "gsd", 0.0) or 0.0) for i in target.inputs],
            "normalisation": f"per-image statistics ({stats})",
            "source_used": src_desc,
            "factor": opts.factor, "class_quota": opts.class_quota, "lr": opts.lr,
            "batch_size": opts.batch_size, "source_batch_size": opts.source_batch_size or opts.batch_size,
            "patch": patch, "seed": opts.seed, "device": device,
            "budget": {k: v for k, v in (("iterations", opts.iterations), ("seconds", opts.seconds),
                                         ("epochs", opts.epochs)) if v is not None},
            **info,
        }
        sensors = {getattr(p, "name", None) for p in target.profiles}
        new_card = ModelCard(**{**card.to_dict(), "stats": adapted_stats or card.stats,
                                "sensor": sensors.pop() if len(sensors) == 1 else card.sensor,
                                "name": name or model_stem_of(out), "provenance": provenance})
        prog(1.0, f"Adapted in {info['iterations']} iteration(s); final pseudo-label share "
                  f"{info['final_pseudo_label_share']:.1%}")
        return save_checkpoint(out, model.cpu(), new_card)
    finally:
        target.close()
        for s in src_scenes:
            close = getattr(s, "close", None)
            if close is not None:
                close()


def model_stem_of(path: Path) -> str:
    from ..models.card import model_stem

    return model_stem(path)


def quick_adapt_for_mapping(model, card, inp, stats, options: dict, progress: Progress):
    """Quick adaptation inside mapping: (adapted model in eval mode, card with provenance), nothing written.

    ``inp`` is the open ModelInput and ``stats`` the Stats mapping normalises with, so adaptation sees exactly
    what prediction will. options: AdaptOptions fields plus "source" and "model_path" (to find the source memory).
    """
    torch = import_torch()
    from ..models.card import ModelCard
    from ..models.devices import pick_device
    from .sampler import TargetSampler

    options = dict(options)
    source = options.pop("source", None)
    model_path = options.pop("model_path", None)
    opts = AdaptOptions(**options)
    device = pick_device(opts.device)
    rng = np.random.default_rng(opts.seed)
    src_draw, counts, src_desc, src_patch, src_scenes = _open_source(source, card, model_path, opts, rng)
    patch = src_patch or opts.patch or (512 if device.startswith("cuda") else 256)
    patch = max(32, min(patch, _floor32(max(inp.width, inp.height))))
    target = TargetSampler([inp], [(stats.mean, stats.std)], patch, augment=opts.augment, seed=opts.seed)
    try:
        torch.manual_seed(opts.seed)
        info = run_adaptation(model, target, src_draw, _weights(counts, torch), opts, progress, device)
    finally:
        for s in src_scenes:
            s.close()
    model = model.cpu().eval()
    provenance = dict(card.provenance) if isinstance(card.provenance, dict) else {}
    provenance["quick_adaptation"] = {"image": str(getattr(inp, "path", "")), "source_used": src_desc,
                                      "patch": patch, **{k: v for k, v in asdict(opts).items() if v is not None},
                                      **info}
    return model, ModelCard(**{**card.to_dict(), "stats": card.stats, "provenance": provenance})


def _floor32(v: int) -> int:
    return max(32, v // 32 * 32)
