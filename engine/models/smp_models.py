"""segmentation_models_pytorch architectures (Unet, DeepLabV3Plus, ... by name) with timm/smp encoders.

Always 4 input bands (NIR,R,G,B) and 25 outputs, and ``encoder_weights=None``: nothing is ever
downloaded; weights come from our checkpoint files.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import FbpError
from ..torch_import import import_smp

# Keyword arguments whose JSON form (lists) must become tuples again for smp.
_TUPLE_KWARGS = ("decoder_channels", "decoder_atrous_rates", "encoder_output_stride_rates")


LOCAL_NAME = re.compile(r"[A-Za-z0-9_.\-]+")


def check_encoder(smp, encoder: str) -> None:
    """FbpError unless ``encoder`` names an encoder installed here (smp's own, or ``tu-`` + a timm model in
    timm's local registry): a hub name (``tu-hf-hub:…``, ``org/model``) or a URL in a model file would make
    building it a download, and a model file never chooses a network request."""
    name = str(encoder)
    timm_name = name[3:] if name.startswith("tu-") else None
    known = LOCAL_NAME.fullmatch(name) is not None
    if known and timm_name is not None:
        import timm

        known = timm.is_model(timm_name)
    elif known:
        known = name in smp.encoders.encoders
    if not known:
        raise FbpError(f"The model names the encoder {name!r}, which is not one installed here "
                       "(a hub or web address is never fetched); use a model whose encoder is one of "
                       "segmentation_models_pytorch's or tu-<timm model>.")


def normalise_arch_kwargs(arch_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """A JSON-friendly copy of the extra smp arguments (tuples become lists, keys sorted)."""
    out: dict[str, Any] = {}
    for key in sorted(arch_kwargs or {}):
        value = arch_kwargs[key]
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def build_smp(
    arch: str,
    encoder: str,
    arch_kwargs: dict[str, Any] | None = None,
    in_channels: int = 4,
    classes: int = 25,
):
    """Build an smp model by architecture name with random weights (never downloads)."""
    smp = import_smp()
    check_encoder(smp, encoder)
    kwargs = {k: (tuple(v) if k in _TUPLE_KWARGS and isinstance(v, list) else v)
              for k, v in (arch_kwargs or {}).items()}
    for forbidden in ("encoder_weights", "in_channels", "classes", "encoder_name"):
        kwargs.pop(forbidden, None)
    try:
        return smp.create_model(
            arch, encoder_name=encoder, encoder_weights=None, in_channels=in_channels, classes=classes,
            **kwargs,
        )
    except KeyError as exc:
        raise FbpError(
            f"The model architecture {arch!r} is not one segmentation_models_pytorch knows ({exc}); "
            "use one of Unet, UnetPlusPlus, FPN, PSPNet, DeepLabV3, DeepLabV3Plus, Linknet, MAnet, PAN, "
            "UPerNet, Segformer."
        ) from None
    except (TypeError, ValueError) as exc:
        raise FbpError(
            f"The smp model {arch!r} with encoder {encoder!r} and options {kwargs} cannot be built ({exc}); "
            "check the encoder name and the architecture options."
        ) from None
