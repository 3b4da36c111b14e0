"""Losses of DPA, as the authors' code: class-weighted cross-entropy (w_c = 1/ln(1.02 + p_c), w_0 = 0,
ignore 0) on both branches; and the KL anchor used by source-free quick adaptation."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..classes import NUM_OUTPUTS, UNLABELED, class_weights
from ..torch_import import import_torch

torch = import_torch()
F = torch.nn.functional


def shares_from_counts(counts: Sequence[int] | np.ndarray) -> dict[int, float]:
    """p_c = count_c / (labelled pixels), for c = 1..24 (index 0 is not a labelled pixel)."""
    counts = np.asarray(counts, dtype=np.float64).reshape(-1)
    if counts.size != NUM_OUTPUTS:
        raise ValueError(f"expected {NUM_OUTPUTS} class counts (index 0..24), got {counts.size}")
    total = counts[1:].sum()
    if total <= 0:
        return {}
    return {c: float(counts[c] / total) for c in range(1, NUM_OUTPUTS)}


def weights_from_counts(counts: Sequence[int] | np.ndarray) -> list[float]:
    """Class weights 1/ln(1.02 + p_c) from per-class pixel counts (0..24), w_0 = 0."""
    return class_weights(shares_from_counts(counts))


def weighted_ce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Class-weighted cross-entropy, ignore index 0 (torch's weighted mean); 0 (with grad) if nothing is
    labelled."""
    labels = labels.long()
    if not bool((labels != UNLABELED).any()):
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits.float(), labels, weight=weights.to(logits.device, torch.float32),
                           ignore_index=UNLABELED)


def dpa_loss(
    source_logits: torch.Tensor,
    source_labels: torch.Tensor,
    target_logits: torch.Tensor,
    pseudo_labels: torch.Tensor,
    weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L = CE_w(source) + CE_w(target, pseudo), equal weights. Returns (total, source part, target part)."""
    ls = weighted_ce(source_logits, source_labels, weights)
    lt = weighted_ce(target_logits, pseudo_labels, weights)
    return ls + lt, ls, lt


def kl_anchor(logits: torch.Tensor, reference_logits: torch.Tensor,
              valid: torch.Tensor | None = None) -> torch.Tensor:
    """Mean per-pixel KL(p_reference || p_model) over valid pixels: keeps the model near the source model."""
    logp = torch.log_softmax(logits.float(), dim=1)
    logq = torch.log_softmax(reference_logits.float(), dim=1)
    kl = (logq.exp() * (logq - logp)).sum(dim=1)
    if valid is not None:
        valid = valid.to(kl.device, torch.bool)
        if not bool(valid.any()):
            return kl.sum() * 0.0
        return kl[valid].mean()
    return kl.mean()
