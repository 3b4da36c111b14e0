"""The authors' U-Net: exact state-dict layout, loading their checkpoint files, and its cost."""

from __future__ import annotations

import pytest

from fbp_landcover.engine.models.authors import import_authors_checkpoint
from fbp_landcover.engine.models.fbp_unet import FbpUNet
from fbp_landcover.engine.models.loading import load_model
from fbp_landcover.engine.torch_import import import_torch
from tests.models import authors_checkpoint, fbp_unet_with_stats

torch = import_torch()


def expected_layout() -> list[tuple[str, tuple[int, ...]]]:
    """Keys and shapes of the authors' U-Net written out: DoubleConv(in, out, mid) = Conv3x3(in->mid, bias)
    - BN - ReLU - Conv3x3(mid->out, bias) - BN - ReLU; encoder 4->64, Down to 128, 256, 512, 512; decoder
    1024->256 (mid 512), 512->128 (mid 256), 256->64 (mid 128), 128->64 (mid 64); 1x1 conv 64->25."""
    blocks = [
        ("inc.double_conv", 4, 64, 64),
        ("down1.maxpool_conv.1.double_conv", 64, 128, 128),
        ("down2.maxpool_conv.1.double_conv", 128, 256, 256),
        ("down3.maxpool_conv.1.double_conv", 256, 512, 512),
        ("down4.maxpool_conv.1.double_conv", 512, 512, 512),
        ("up1.conv.double_conv", 1024, 512, 256),
        ("up2.conv.double_conv", 512, 256, 128),
        ("up3.conv.double_conv", 256, 128, 64),
        ("up4.conv.double_conv", 128, 64, 64),
    ]
    keys: list[tuple[str, tuple[int, ...]]] = []
    for prefix, cin, mid, cout in blocks:
        for conv, bn, cfrom, cto in ((0, 1, cin, mid), (3, 4, mid, cout)):
            keys += [(f"{prefix}.{conv}.weight", (cto, cfrom, 3, 3)), (f"{prefix}.{conv}.bias", (cto,))]
            bn_keys = ("weight", "bias", "running_mean", "running_var")
            keys += [(f"{prefix}.{bn}.{n}", (cto,)) for n in bn_keys]
            keys += [(f"{prefix}.{bn}.num_batches_tracked", ())]
    keys += [("outc.conv.weight", (25, 64, 1, 1)), ("outc.conv.bias", (25,))]
    return keys


def test_state_dict_keys_and_shapes_match_the_authors_layout():
    with torch.device("meta"):
        state = FbpUNet().state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == expected_layout()


def test_output_has_25_channels_and_input_size_even_when_not_a_multiple_of_16():
    model = FbpUNet().eval()
    with torch.inference_mode():
        out = model(torch.zeros(2, 4, 40, 56))
    assert tuple(out.shape) == (2, 25, 40, 56)


def test_flops_per_512_tile_are_about_321_gflop():
    model = FbpUNet().eval()
    flops = [0]

    def count(module, _inputs, output):
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        flops[0] += 2 * k * output.numel() + (output.numel() if module.bias is not None else 0)

    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(count)
    with torch.inference_mode():
        model(torch.zeros(1, 4, 64, 64))
    per_512 = flops[0] * (512 * 512) / (64 * 64)  # fully convolutional: cost scales with pixels
    assert per_512 == pytest.approx(321e9, rel=0.03)


@pytest.fixture(scope="module")
def reference():
    model = fbp_unet_with_stats(seed=3)
    x = torch.randn(1, 4, 32, 48, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        logits = model(x)
    return model, x, logits


@pytest.mark.parametrize(
    ("prefix", "numpy_best_pred", "bare"),
    [("", True, False), ("module.", True, False), ("module.", False, False), ("", False, True)],
)
def test_authors_checkpoint_loads_and_gives_identical_logits(tmp_path, reference, prefix, numpy_best_pred,
                                                             bare):
    model, x, logits = reference
    src = authors_checkpoint(tmp_path / "unet_chengdu.pth.tar", model.state_dict(), prefix=prefix,
                             numpy_best_pred=numpy_best_pred, bare=bare)
    loaded, card, path = load_model(str(src))
    assert path == str(src)
    assert not loaded.training
    assert card.architecture == "fbp_unet" and card.sensor == "planetscope"
    if not bare:
        assert card.provenance["best_pred"] == pytest.approx(0.4321) and card.provenance["epoch"] == 119
    with torch.inference_mode():
        assert torch.equal(loaded(x), logits)


def test_imported_fbpmodel_gives_identical_logits(tmp_path, reference):
    model, x, logits = reference
    src = authors_checkpoint(tmp_path / "unet_wuhan.pth.tar", model.state_dict(), prefix="module.")
    card = import_authors_checkpoint(src, tmp_path / "wuhan.fbpmodel")
    assert card.name == "wuhan" and card.sensor == "gaofen1"
    loaded, card2, _ = load_model(str(tmp_path / "wuhan.fbpmodel"))
    assert card2 == card
    with torch.inference_mode():
        assert torch.equal(loaded(x), logits)
