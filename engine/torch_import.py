"""Import torch (and make torchvision importable) on machines with a CPU-only torch.

PyPI only has CUDA builds of torchvision. With a CPU torch its compiled operators do not load, and a
plain ``import torchvision`` fails with ``RuntimeError: operator torchvision::nms does not exist``
(an unguarded fake registration for ``torchvision::nms`` and ``torchvision::qnms``). smp imports
torchvision at import time. The fix touches no installed file: catch that error, drop the
half-imported modules, define the two operator schemas ourselves and import again. On a machine with
a matching torchvision none of this triggers.
"""

from __future__ import annotations

import importlib
import os
import sys

_SCHEMA = "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
_library = None  # keeps the schema registration alive for the life of the process


def import_torch():
    """Return the torch module, with torchvision importable afterwards."""
    import torch

    _ensure_torchvision()
    return torch


def _ensure_torchvision() -> None:
    global _library
    if "torchvision" in sys.modules and _library is not None:
        return
    try:
        importlib.import_module("torchvision")
        return
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
    except ImportError:
        return  # no torchvision at all: only smp needs it, and it says so itself
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    import torch

    _library = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        try:
            _library.define(op + _SCHEMA)
        except RuntimeError:
            pass  # already defined by a partial load
    importlib.import_module("torchvision")


OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}  # a model file never chooses a download


def force_offline() -> None:
    """Put the model hubs (huggingface_hub, which timm and smp use) in offline mode for this process, before
    they are imported: nothing the engine builds may reach the network."""
    os.environ.update(OFFLINE)
    hub = sys.modules.get("huggingface_hub.constants")
    if hub is not None and hasattr(hub, "HF_HUB_OFFLINE"):
        hub.HF_HUB_OFFLINE = True  # imported earlier by someone else: it read the variable already


def import_smp():
    """Return segmentation_models_pytorch, imported safely (and offline)."""
    force_offline()
    import_torch()
    import segmentation_models_pytorch as smp

    return smp
