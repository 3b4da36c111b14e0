"""Network architectures: the authors' U-Net and smp models, built from a ModelCard.

Nothing here imports torch at module import time; ``build_model`` does, lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fbp_landcover.engine.errors import FbpError

if TYPE_CHECKING:  # pragma: no cover
    from fbp_landcover.engine.checkpoints import ModelCard

ARCHITECTURES = ("fbp_unet", "smp")


def build_model(card: ModelCard) -> Any:
    """A freshly initialised (random weights) torch module for the card's architecture, in eval mode."""
    in_channels = len(card.in_bands)
    if card.architecture == "fbp_unet":
        from fbp_landcover.engine.models.fbp_unet import FbpUNet

        model = FbpUNet(in_channels, card.num_outputs)
    elif card.architecture == "smp":
        from fbp_landcover.engine.models.smp_models import build_smp

        if not card.smp_arch or not card.encoder:
            raise FbpError(
                f"The model card {card.name!r} says architecture 'smp' but names no smp_arch/encoder; "
                "re-create the checkpoint with both."
            )
        model = build_smp(card.smp_arch, card.encoder, card.arch_kwargs, in_channels, card.num_outputs)
    else:
        raise FbpError(
            f"The model card {card.name!r} names the architecture {card.architecture!r}; "
            f"expected one of {', '.join(ARCHITECTURES)} (is the checkpoint from a newer fbp_landcover?)."
        )
    return model.eval()


def input_multiple(model: Any) -> int:
    """The number window heights and widths must be a multiple of for this model (16 for the FBP U-Net)."""
    encoder = getattr(model, "encoder", None)
    stride = getattr(encoder, "output_stride", None)
    if isinstance(stride, int) and stride > 0:
        return stride
    return 16
