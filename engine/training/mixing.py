"""ClassMix (Olsson et al. 2021), the mixing of DACS, DAFormer and MIC: half of the classes of a source patch
are cut out with their pixels and pasted onto a target patch; the mixed patch's labels are the source labels
where source pixels were pasted and the target's pseudo-labels elsewhere, so labels follow the pixels.

Patch i of the source batch is mixed into patch i of the target batch (the shorter batch sets the count).
The classes pasted are floor((n + 1) / 2) of the n classes 1..24 present in the source patch, drawn with the
given generator; label 0 (unlabelled) is never a class to paste.
"""

from __future__ import annotations

from ..torch_import import import_torch


def class_mix(xs, ys, xt, yt, generator=None):
    """(mixed images (n, C, H, W), mixed labels (n, H, W), pasted mask (n, H, W) bool) for n = min(len(xs),
    len(xt)); source and target patches must have the same size."""
    torch = import_torch()
    n = min(xs.shape[0], xt.shape[0])
    if xs.shape[1:] != xt.shape[1:]:
        raise ValueError(f"source patches {tuple(xs.shape[1:])} and target patches "
                         f"{tuple(xt.shape[1:])} differ")
    masks = []
    for i in range(n):
        present = torch.unique(ys[i])
        present = present[present != 0]
        if present.numel() == 0:
            masks.append(torch.zeros_like(ys[i], dtype=torch.bool))
            continue
        order = torch.randperm(present.numel(), generator=generator)
        chosen = present[order[: (present.numel() + 1) // 2].to(present.device)]
        masks.append(torch.isin(ys[i], chosen))
    mask = torch.stack(masks)
    x = torch.where(mask[:, None], xs[:n], xt[:n])
    y = torch.where(mask, ys[:n].long(), yt[:n].long())
    return x, y, mask
