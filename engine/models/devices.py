"""Which device torch runs on: the choices, the CUDA device's name, and what 'auto' picks."""

from __future__ import annotations

from ..errors import FbpError
from ..torch_import import import_torch

DEVICES = ("auto", "cpu", "cuda")


def cuda_device_name() -> str | None:
    """The CUDA device's name, or None when torch sees no CUDA device (a broken driver counts as none)."""
    torch = import_torch()
    try:
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # any failure of the driver: no device
        return None
    return None


def pick_device(device: str = "auto") -> str:
    """'cuda' when asked (FbpError if torch sees none) or, under 'auto', when there is one; else 'cpu'."""
    if device not in DEVICES:
        raise FbpError(f"The device {device!r} is unknown; use one of {', '.join(DEVICES)}.")
    gpu = cuda_device_name()
    if device == "cuda" and gpu is None:
        raise FbpError("The device 'cuda' was requested but torch sees no CUDA device "
                       "(CPU-only torch or no GPU); use device 'auto' or 'cpu'.")
    return "cuda" if device != "cpu" and gpu is not None else "cpu"
