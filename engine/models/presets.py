"""Named architectures a user can train without knowing smp's vocabulary.

- ``fbp_unet``: the authors' U-Net: what their published checkpoints are.
- ``compact``: an smp FPN on a MobileNetV3-small encoder (64 pyramid / 32 segmentation channels): class
  scores at 1/4 resolution, upsampled 4x. The one we recommend for laptops and CPUs, the fastest there.
- ``mobile_unet``: an smp U-Net on the same encoder with a lean decoder (64-32-24-16-8 channels): class
  scores at full resolution, so sharper boundaries and better scores on the demo benchmark, and slower.

bench/README.md gives the speed of each, the candidates measured and the accuracy cost on the demo benchmark.
- ``standard``: an smp U-Net on ResNet-34, a common strong baseline for GPUs.
"""

from __future__ import annotations

from ..errors import FbpError

PRESETS: dict[str, dict] = {
    "fbp_unet": {"architecture": "fbp_unet", "smp_arch": None, "encoder": None, "arch_kwargs": {}},
    "compact": {"architecture": "smp", "smp_arch": "FPN", "encoder": "tu-mobilenetv3_small_100",
                "arch_kwargs": {"decoder_pyramid_channels": 64, "decoder_segmentation_channels": 32}},
    "mobile_unet": {"architecture": "smp", "smp_arch": "Unet", "encoder": "tu-mobilenetv3_small_100",
                    "arch_kwargs": {"decoder_channels": [64, 32, 24, 16, 8]}},
    "standard": {"architecture": "smp", "smp_arch": "Unet", "encoder": "resnet34", "arch_kwargs": {}},
}


def preset(name: str) -> dict:
    """The ModelCard fields of a named architecture."""
    if name not in PRESETS:
        raise FbpError(f"Unknown model preset {name!r}; choose one of {', '.join(PRESETS)}.")
    return dict(PRESETS[name])
