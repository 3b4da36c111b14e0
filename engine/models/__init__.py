"""Network architectures: the authors' U-Net and smp models, built from a ModelCard.

Nothing here imports torch at module import time; ``build_model`` does, lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import FbpError

if TYPE_CHECKING:  # pragma: no cover
    from .card import ModelCard

ARCHITECTURES = ("fbp_unet", "smp")


def build_model(card: ModelCard) -> Any:
    """A freshly initialised (random weights) torch module for the card's architecture, in eval mode."""
    in_channels = len(card.in_bands)
    if card.architecture == "fbp_unet":
        from .fbp_unet import FbpUNet

        model = FbpUNet(in_channels, card.num_outputs)
    elif card.architecture == "smp":
        from .smp_models import build_smp

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


def _upsampling_head(model: Any) -> Any:
    """The model's segmentation head when it ends by upsampling its class scores (smp FPN: a 1x1 convolution
    at 1/4 resolution, then 4x bilinear, no activation), else None."""
    from ..torch_import import import_torch

    nn = import_torch().nn
    head = getattr(model, "segmentation_head", None)
    if (isinstance(head, nn.Sequential) and len(head) == 3 and isinstance(head[1], nn.Upsample)
            and isinstance(getattr(head[2], "activation", None), nn.Identity)
            and head[1].mode == "bilinear" and float(head[1].scale_factor or 0).is_integer()
            and int(head[1].scale_factor or 0) > 1):
        return head
    return None


def final_upsample(model: Any) -> Any:
    """The head's final upsampling module (torch), or None when the network scores every pixel itself."""
    head = _upsampling_head(model)
    return head[1] if head is not None else None


def output_scale(model: Any) -> int:
    """How many input pixels one class score of the network spans along each axis before its head's final
    upsampling: 4 for the smp FPN (``compact``), 1 for models that score every pixel themselves."""
    head = _upsampling_head(model)
    return int(head[1].scale_factor) if head is not None else 1


def probability_model(model: Any, coarse: bool = False) -> Any:
    """An inference module giving softmax class probabilities (N,25,h,w) of ``model``'s scores.

    The softmax is written out as exp(x - max) / sum, which onnxruntime runs much faster than its Softmax
    operator over the channels of an NCHW tensor (bench/README.md). Where the model's head ends by
    upsampling its class scores (``output_scale`` > 1), the softmax runs before that upsampling: the
    probabilities are then the bilinear blend of the coarse probabilities (still summing to one), and the
    exponentials cost 1/16 as much. ``coarse``: stop there, (N,25,h/s,w/s) without the upsampling (the
    mapping blends at that resolution and upsamples once, inference.classify). The weights are shared.
    """
    from ..torch_import import import_torch

    torch = import_torch()
    nn = torch.nn

    def softmax(logits):
        logits = logits.float()  # under a GPU's autocast the scores may be bf16/fp16
        e = torch.exp(logits - logits.amax(dim=1, keepdim=True))
        return e / e.sum(dim=1, keepdim=True)

    class WithSoftmax(nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return softmax(self.inner(x))

    class SoftmaxThenUpsample(nn.Module):
        def __init__(self, upsample: Any) -> None:
            super().__init__()
            self.upsample = upsample

        def forward(self, logits):
            return self.upsample(softmax(logits))

    head = _upsampling_head(model)
    if head is not None:
        import copy

        probs = copy.copy(model)  # a shallow copy whose head alone differs; parameters are shared
        probs._modules = dict(model._modules)
        last = (WithSoftmax(nn.Identity()) if coarse else SoftmaxThenUpsample(head[1]))
        probs.segmentation_head = nn.Sequential(head[0], last, head[2])
        return probs
    return WithSoftmax(model).eval()
