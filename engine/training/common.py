"""What training and adaptation share: the optimiser, the poly learning-rate schedule and mixed precision.

SGD with Nesterov momentum as the reference; the learning rate follows base · (1 − i/T)^power at iteration i,
set by torch's LambdaLR. (torch's PolynomialLR computes the same decay by multiplying step ratios: it drifts
from the closed form by ~1e-15, cannot start at a resumed iteration, and cannot follow a total that is
re-estimated while running, as adaptation with a time budget does.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..torch_import import import_torch


def poly_lr(base_lr: float, iteration: int, total: int, power: float = 0.9) -> float:
    """The reference "poly" schedule: base_lr * (1 - iteration / total) ** power."""
    return base_lr * (1.0 - min(iteration, total) / max(1, total)) ** power


def make_optimizer(model, lr: float, momentum: float = 0.9, weight_decay: float = 1e-5, params=None):
    """SGD with Nesterov momentum over ``params`` (default: all of the model's parameters)."""
    torch = import_torch()
    return torch.optim.SGD(model.parameters() if params is None else params, lr=lr, momentum=momentum,
                           nesterov=True,
                           weight_decay=weight_decay)


class Optimisation:
    """The optimiser of a run with its learning-rate schedule and, on a GPU, mixed precision.

    Per iteration: ``at(i)`` (the learning rate of iteration i), ``zero_grad()``, the forward pass under
    ``autocast()``, ``step(loss)``. ``schedule(total, power, start)`` starts the poly schedule at iteration
    ``start`` (a resumed run); ``total(i)`` is the total the rate of iteration i is computed with (it may be
    re-estimated while running).
    """

    def __init__(self, model, *, lr: float, momentum: float, weight_decay: float, device: str,
                 amp: bool, params=None) -> None:
        torch = import_torch()
        self.torch = torch
        self.base_lr = lr
        self.optimizer = make_optimizer(model, lr, momentum, weight_decay, params)
        self.amp = bool(amp and device.startswith("cuda"))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self._schedule: Any = None
        self._iteration = 0

    def schedule(self, total: Callable[[int], int], power: float, start: int = 0) -> None:
        # a loaded optimizer state holds the last rate, not the base
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] = self.base_lr
        self._iteration = start
        self._schedule = self.torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda k: poly_lr(1.0, start + k, total(start + k), power))

    def at(self, iteration: int) -> None:
        """Move the schedule to ``iteration`` (each iteration in turn, from ``start``)."""
        while self._iteration < iteration:
            self._schedule.step()
            self._iteration += 1

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def autocast(self):
        return self.torch.autocast("cuda", enabled=self.amp)

    def step(self, loss) -> None:
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
