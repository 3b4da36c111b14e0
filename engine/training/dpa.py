"""Dynamic Pseudo-label Assignment (Tong et al. 2023): normalised entropy, the growing share, the rule.

The reference rule: keep the floor(N * r) pixels of the whole target batch with the lowest normalised
entropy, labelled by argmax over all 25 channels; every other pixel is 0 (ignored). Ties are broken by
flat pixel index (a stable sort), so the result is deterministic. An optional per-class quota (off by
default) answers a known weakness of the method: rare classes vanishing from the pseudo-labels.
"""

from __future__ import annotations

import math

from ..torch_import import import_torch

torch = import_torch()

_EPS = 1e-9  # guards floor(N * r) against r like 0.15000000000000002 / 0.1499999999


def normalized_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H = -sum_c p_c log2 p_c / log2(C) in [0, 1] per pixel, from (N, C, H, W) logits -> (N, H, W)."""
    logp = torch.log_softmax(logits.float(), dim=1)
    h = -(logp.exp() * logp).sum(dim=1) / math.log(logits.shape[1])
    return h.clamp_(0.0, 1.0)


def ratio_at(epoch: int, epochs: int, factor: float = 0.5) -> float:
    """The reference share at 0-based ``epoch`` of ``epochs``: (epoch + 1) / epochs * factor."""
    if epochs <= 0:
        raise ValueError("epochs must be positive")
    return (min(max(epoch, 0), epochs - 1) + 1) / epochs * factor


def ratio_at_iteration(iteration: int, iterations: int, factor: float = 0.5,
                       steps: int | None = None) -> float:
    """The schedule compressed into ``iterations`` (quick mode).

    ``steps`` = number of virtual epochs the budget is cut into (the share is constant within one, as in the
    reference); None = every iteration is its own step, i.e. (iteration + 1) / iterations * factor.
    """
    if iterations <= 0:
        raise ValueError("iterations must be positive")
    iteration = min(max(iteration, 0), iterations - 1)
    if steps is None:
        return (iteration + 1) / iterations * factor
    steps = max(1, min(steps, iterations))
    return ratio_at(iteration * steps // iterations, steps, factor)


def quota_share(class_quota: float | bool | None) -> float:
    """The fraction of the budget reserved for per-class quotas (True = 0.5; None/False/0 = off)."""
    if class_quota is None or class_quota is False:
        return 0.0
    if class_quota is True:
        return 0.5
    share = float(class_quota)
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"class_quota must be in [0, 1], got {class_quota}")
    return share


def assign_pseudo_labels(
    logits: torch.Tensor,
    ratio: float,
    class_quota: float | bool | None = None,
    valid: torch.Tensor | None = None,
    entropy: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pseudo-labels (N, H, W) long from target logits (N, C, H, W): 0 except on the selected pixels.

    ratio: the share r of pixels kept (budget k = floor(n * r), n = all pixels, or the valid ones when
    ``valid`` (N, H, W) bool is given; invalid pixels are never selected).
    class_quota: None/False/0 reproduces the reference exactly. A share q in (0, 1] (True = 0.5) reserves
    q * k of the budget split equally among the predicted classes 1..C-1: each keeps at least
    min(q * k / classes_predicted, its own pixel count) of its lowest-entropy pixels; the rest of the budget
    goes to the lowest-entropy pixels overall, as in the reference. The total is always exactly k.
    """
    with torch.no_grad():
        n_img, n_cls, h, w = logits.shape
        ent = normalized_entropy(logits) if entropy is None else entropy.float()
        pred = logits.argmax(dim=1)
        flat_ent = ent.reshape(-1)
        flat_pred = pred.reshape(-1)
        if valid is not None:
            flat_valid = valid.reshape(-1).to(torch.bool)
            n = int(flat_valid.sum())
            flat_ent = torch.where(flat_valid, flat_ent, torch.full_like(flat_ent, math.inf))
        else:
            n = flat_ent.numel()
        k = min(n, int(math.floor(n * float(ratio) + _EPS)))
        labels = torch.zeros_like(flat_pred)
        if k <= 0:
            return labels.reshape(n_img, h, w)
        order = torch.argsort(flat_ent, stable=True)  # lowest entropy first, ties by flat index
        q = quota_share(class_quota)
        if q <= 0.0:
            chosen = order[:k]
        else:
            chosen = _with_quota(order, flat_pred[order], n, k, q, n_cls)
        labels[chosen] = flat_pred[chosen]
        return labels.reshape(n_img, h, w)


def _with_quota(order: torch.Tensor, cls_sorted: torch.Tensor, n: int, k: int, q: float,
                n_cls: int) -> torch.Tensor:
    """Indices of the k selected pixels: per-class guarantees first, then the global lowest-entropy rest."""
    order, cls_sorted = order[:n], cls_sorted[:n]  # only valid pixels (invalid ones sort last, entropy inf)
    counts = torch.bincount(cls_sorted, minlength=n_cls)
    present = counts.clone()
    present[0] = 0  # unlabeled is never a class to protect
    n_present = int((present > 0).sum())
    if n_present == 0:
        return order[:k]
    per_class = int(math.floor(q * k / n_present))
    quota = torch.minimum(present, torch.full_like(present, per_class))
    by_class = torch.argsort(cls_sorted, stable=True)  # grouped by class, entropy order kept inside
    cls_grouped = cls_sorted[by_class]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n, device=order.device) - starts[cls_grouped]
    taken = torch.zeros(n, dtype=torch.bool, device=order.device)
    taken[by_class[rank < quota[cls_grouped]]] = True
    rest = k - int(taken.sum())
    if rest > 0:
        free = torch.nonzero(~taken).squeeze(1)[:rest]  # positions in entropy order
        taken[free] = True
    return order[taken]
