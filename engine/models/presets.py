"""Named architectures a user can train without knowing smp's vocabulary.

- ``fbp_unet``: the authors' U-Net (fbp.md §3): what their published checkpoints are; ~1.22 MFLOP/pixel.
- ``compact``: an smp U-Net on a MobileNetV3-small encoder with a lean decoder (~1.4 M weights): the one
  we recommend for laptops and CPUs; the fastest of six compact candidates measured on 2 CPU cores with
  onnxruntime (bench/README.md).
- ``standard``: an smp U-Net on ResNet-34, a common strong baseline for GPUs.
"""

from __future__ import annotations

from fbp_landcover.engine.errors import FbpError

PRESETS: dict[str, dict] = {
    "fbp_unet": {"architecture": "fbp_unet", "smp_arch": None, "encoder": None, "arch_kwargs": {}},
    "compact": {"architecture": "smp", "smp_arch": "Unet", "encoder": "tu-mobilenetv3_small_100",
                "arch_kwargs": {"decoder_channels": [64, 32, 24, 16, 8]}},
    "standard": {"architecture": "smp", "smp_arch": "Unet", "encoder": "resnet34", "arch_kwargs": {}},
}


def preset(name: str) -> dict:
    """The ModelCard fields of a named architecture."""
    if name not in PRESETS:
        raise FbpError(f"Unknown model preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return dict(PRESETS[name])
