"""Tiny checkpoints made by code for the tests: random weights, saved in our .fbpmodel format."""

from __future__ import annotations

from pathlib import Path

from fbp_landcover.engine.models import build_model
from fbp_landcover.engine.models.card import ModelCard, now_iso
from fbp_landcover.engine.models.fbpmodel import save_checkpoint
from fbp_landcover.engine.torch_import import import_torch

# The fastest small smp model measured on the 2-core CPU (about 0.03 s for 1x4x256x256, 0.3 M weights).
TINY_SMP = {
    "smp_arch": "Unet",
    "encoder": "tu-mobilenetv3_small_050",
    "arch_kwargs": {"encoder_depth": 3, "decoder_channels": [32, 16, 8]},
}
UNTRAINED = "untrained random weights, made for tests"


def tiny_card(architecture: str = "smp", name: str = "tiny", seed: int = 0, **overrides) -> ModelCard:
    """The card of a test model ('smp': a tiny Unet; 'fbp_unet': the full authors' U-Net)."""
    arch = dict(TINY_SMP) if architecture == "smp" else {}
    fields = {
        "name": name,
        "architecture": architecture,
        **arch,
        "sensor": None,
        "stats": None,
        "provenance": {"trained_on": UNTRAINED, "seed": seed, "created": now_iso()},
    }
    fields.update(overrides)
    return ModelCard(**fields)


def tiny_model(architecture: str = "smp", seed: int = 0, **overrides):
    """(model in eval mode with seeded random weights, card)."""
    torch = import_torch()
    card = tiny_card(architecture, seed=seed, **overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(card)
    return model.eval(), card


def tiny_checkpoint(path: str | Path, architecture: str = "smp", seed: int = 0, **overrides) -> Path:
    """Save a small random-weight model (our format) at ``path``; returns the path."""
    path = Path(path)
    model, card = tiny_model(architecture, seed=seed, name=overrides.pop("name", path.name.split(".")[0]),
                             **overrides)
    save_checkpoint(path, model, card)
    return path


def fbp_unet_with_stats(seed: int = 0):
    """The authors' U-Net with seeded random weights AND random BatchNorm running statistics, eval mode."""
    torch = import_torch()
    from fbp_landcover.engine.models.fbp_unet import FbpUNet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = FbpUNet()
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.data.uniform_(0.8, 1.2)
                module.bias.data.uniform_(-0.1, 0.1)
                module.num_batches_tracked.fill_(1000)
    return model.eval()


def authors_checkpoint(path: str | Path, state: dict | None = None, *, seed: int = 0, prefix: str = "",
                       numpy_best_pred: bool = True, bare: bool = False) -> Path:
    """Write a file laid out like the authors' ``unet_<city>.pth.tar``: torch.save of
    {'epoch', 'state_dict', 'optimizer', 'best_pred'} (or a bare state dict), keys optionally prefixed."""
    import numpy as np

    torch = import_torch()
    if state is None:
        state = fbp_unet_with_stats(seed).state_dict()
    state = {prefix + k: v for k, v in state.items()}
    best = np.float64(0.4321) if numpy_best_pred else 0.4321
    payload = state if bare else {
        "epoch": 119,
        "state_dict": state,
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.005, "momentum": 0.9, "nesterov": True,
                                                     "weight_decay": 1e-5, "params": [0, 1, 2]}]},
        "best_pred": best,
    }
    path = Path(path)
    torch.save(payload, path)
    return path
