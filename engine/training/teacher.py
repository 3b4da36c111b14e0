"""The mean teacher of DACS, DAFormer and MIC: an exponential moving average of the student's weights that
gives the pseudo-labels, so they change slowly and a bad step of the student does not feed on itself.

After every optimiser step: θ_T ← α·θ_T + (1 − α)·θ_S for every parameter and floating-point buffer
(BatchNorm's running statistics); integer buffers (BatchNorm's batch counter) are copied. The teacher starts
as the model before adaptation and always runs in eval mode, without gradients.
"""

from __future__ import annotations

import copy

from ..torch_import import import_torch


def frozen_copy(model):
    """A copy of ``model`` in eval mode whose parameters need no gradient."""
    twin = copy.deepcopy(model).eval()
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


class MeanTeacher:
    """``update(student)`` after each step; ``logits(x)`` are the teacher's (no gradient)."""

    def __init__(self, student, alpha: float) -> None:
        if not 0.0 < float(alpha) < 1.0:
            raise ValueError(f"the teacher's EMA momentum must be in (0, 1), got {alpha}")
        self.alpha = float(alpha)
        self.model = frozen_copy(student)

    def update(self, student) -> None:
        torch = import_torch()
        a = self.alpha
        with torch.no_grad():
            for t, s in zip(self.model.parameters(), student.parameters(), strict=True):
                t.mul_(a).add_(s.detach(), alpha=1.0 - a)
            for t, s in zip(self.model.buffers(), student.buffers(), strict=True):
                if t.dtype.is_floating_point:
                    t.mul_(a).add_(s.detach(), alpha=1.0 - a)
                else:
                    t.copy_(s)

    def logits(self, x):
        torch = import_torch()
        with torch.no_grad():
            return self.model(x)
