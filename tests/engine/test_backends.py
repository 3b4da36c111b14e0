"""Inference backends: torch and onnxruntime agree, the ONNX cache is reused and refreshed, reasons are given.

Tolerance: onnxruntime and torch fp32 probabilities agree within 1e-3 absolute (measured ~1e-7) and their
argmax within 99.9 % of pixels.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from fbp_landcover.engine.errors import FbpError
from fbp_landcover.engine.inference import onnx_cache
from fbp_landcover.engine.inference.backends import make_backend
from fbp_landcover.engine.models import devices
from fbp_landcover.engine.models.card import file_sha256
from fbp_landcover.engine.models.loading import load_model
from fbp_landcover.engine.torch_import import import_torch
from tests.models import fbp_unet_with_stats, tiny_checkpoint

torch = import_torch()
PROB_ATOL = 1e-3
ARGMAX_AGREEMENT = 0.999


def _batch(n=2, h=64, w=96, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 4, h, w)).astype(np.float32)


def _agree(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape and a.dtype == np.float32 and b.dtype == np.float32
    assert np.abs(a - b).max() <= PROB_ATOL
    assert (a.argmax(1) == b.argmax(1)).mean() >= ARGMAX_AGREEMENT


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(devices, "cuda_device_name", lambda: None)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny checkpoint and its ONNX backend (exported once for the module)."""
    folder = tmp_path_factory.mktemp("onnx")
    path = tiny_checkpoint(folder / "tiny.fbpmodel", seed=0)
    model, card, where = load_model(str(path))
    backend = make_backend(model, card, where, backend="onnx", device="cpu")
    return path, model, card, backend


def test_torch_cpu_backend_gives_probabilities_and_the_reason(tmp_path, no_cuda):
    model, card, where = load_model(str(tiny_checkpoint(tmp_path / "t.fbpmodel")))
    backend = make_backend(model, card, where, backend="torch")
    assert (backend.name, backend.device) == ("torch", "cpu")
    assert backend.reason.startswith("CPU — no CUDA device found")
    probs = backend(_batch(2, 64, 64))
    assert probs.shape == (2, 25, 64, 64) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    with torch.inference_mode():
        expected = torch.softmax(model(torch.from_numpy(_batch(2, 64, 64))), 1).numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-7)  # softmax written out as exp/sum
    cpu = make_backend(model, card, where, backend="torch", device="cpu")
    assert cpu.reason.startswith("CPU — requested")


def test_bad_requests_are_refused(tmp_path, no_cuda):
    model, card, where = load_model(str(tiny_checkpoint(tmp_path / "t.fbpmodel")))
    with pytest.raises(FbpError, match="no CUDA device"):
        make_backend(model, card, where, device="cuda")
    with pytest.raises(FbpError, match="backend 'tensorrt' is unknown"):
        make_backend(model, card, where, backend="tensorrt")
    with pytest.raises(FbpError, match="device 'tpu' is unknown"):
        make_backend(model, card, where, device="tpu")


def test_auto_falls_back_to_torch_when_onnxruntime_is_missing(tmp_path, no_cuda, monkeypatch):
    model, card, where = load_model(str(tiny_checkpoint(tmp_path / "t.fbpmodel")))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes "import onnxruntime" fail
    backend = make_backend(model, card, where)
    assert backend.name == "torch" and backend.device == "cpu"
    assert "no CUDA device found" in backend.reason and "onnxruntime unavailable" in backend.reason
    with pytest.raises(FbpError, match="onnx backend could not be prepared"):
        make_backend(model, card, where, backend="onnx")
    assert list(tmp_path.glob("*.onnx")) == []


@pytest.mark.slow
def test_onnx_matches_torch(exported):
    path, model, card, backend = exported
    assert (backend.name, backend.device) == ("onnx", "cpu")
    assert backend.onnx_path == path.parent / f"tiny.{onnx_cache.export_key(file_sha256(path))}.onnx"
    torch_backend = make_backend(model, card, str(path), backend="torch", device="cpu")
    for shape in [(1, 64, 64), (3, 96, 160)]:  # dynamic batch, height and width
        batch = _batch(*shape)
        _agree(backend(batch), torch_backend(batch))


@pytest.mark.slow
def test_auto_on_cpu_picks_onnx_and_reuses_the_cache(exported, no_cuda, monkeypatch):
    path, model, card, first = exported
    mtime = first.onnx_path.stat().st_mtime_ns

    def no_export(*_a, **_k):
        raise AssertionError("exported again although the cache is valid")

    monkeypatch.setattr(onnx_cache, "export_onnx", no_export)
    again = make_backend(model, card, str(path))
    assert again.name == "onnx" and again.onnx_path == first.onnx_path
    assert again.reason.startswith("CPU — no CUDA device found; onnxruntime")
    assert again.onnx_path.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again(_batch(1, 64, 64)), first(_batch(1, 64, 64)))


@pytest.mark.slow
def test_cache_is_refreshed_when_the_checkpoint_changes(tmp_path, exported):
    path, _model, _card, old = exported
    folder = tmp_path / "changing"
    folder.mkdir()
    ckpt = folder / "tiny.fbpmodel"
    shutil.copyfile(path, ckpt)
    shutil.copyfile(old.onnx_path, folder / old.onnx_path.name)  # a valid cache for the old weights
    tiny_checkpoint(ckpt, seed=1)  # new weights, same file name
    model, card, where = load_model(str(ckpt))
    backend = make_backend(model, card, where, backend="onnx")
    assert backend.onnx_path == folder / f"tiny.{onnx_cache.export_key(file_sha256(ckpt))}.onnx"
    assert backend.onnx_path.name != old.onnx_path.name
    assert sorted(p.name for p in folder.iterdir()) == sorted(["tiny.fbpmodel", backend.onnx_path.name])
    batch = _batch(1, 64, 64)
    new_torch = make_backend(model, card, where, backend="torch", device="cpu")
    _agree(backend(batch), new_torch(batch))
    assert np.abs(backend(batch) - old(batch)).max() > 1e-3  # it really uses the new weights


def _softmax_onnx(path) -> None:
    """A valid one-node ONNX model (softmax over channels, dynamic sizes): stands in for a real export."""
    import onnx
    from onnx import TensorProto, helper

    dims = ["n", 4, "h", "w"]
    graph = helper.make_graph(
        [helper.make_node("Softmax", ["x"], ["probabilities"], axis=1)],
        "softmax",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, dims)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8  # readable by any onnxruntime of the last years
    onnx.save(model, str(path))


def test_read_only_checkpoint_folder_uses_the_user_cache(tmp_path, monkeypatch):
    folder = tmp_path / "readonly"
    ckpt = tiny_checkpoint(folder / "tiny.fbpmodel")
    model, card, where = load_model(str(ckpt))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, **kwargs):
        if Path(kwargs["dir"]).resolve() == folder.resolve():
            raise PermissionError(13, "Permission denied", str(kwargs["dir"]))
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)  # every atomic write goes through it
    exports = []
    # the real export is tested above; a one-node model stands in here, to test where the file goes
    monkeypatch.setattr(onnx_cache, "export_onnx", lambda _m, dst: (exports.append(dst), _softmax_onnx(dst)))
    backend = make_backend(model, card, where, backend="onnx")
    name = f"tiny.{onnx_cache.export_key(file_sha256(ckpt))}.onnx"
    expected = tmp_path / "cache" / "fbp_landcover" / "onnx" / name
    assert backend.onnx_path == expected and expected.is_file()
    assert len(exports) == 1 and Path(exports[0]).parent == expected.parent
    assert list(folder.glob("*.onnx")) == [] and list(expected.parent.glob("*.tmp")) == []
    batch = _batch(1, 8, 8)
    np.testing.assert_allclose(backend(batch), torch.softmax(torch.from_numpy(batch), 1).numpy(), atol=1e-6)
    again = make_backend(model, card, where, backend="onnx")  # found in the user cache: no export
    assert again.onnx_path == expected and len(exports) == 1


def test_in_memory_weights_are_keyed_by_their_hash(tmp_path):
    model, card, _ = load_model(str(tiny_checkpoint(tmp_path / "mem.fbpmodel")))
    name = onnx_cache.onnx_cache_name(model, card, None)
    assert name.startswith("mem.") and name.endswith(".onnx") and len(name) == len("mem.") + 16 + 5
    assert onnx_cache.onnx_cache_name(model, card, None) == name
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    assert onnx_cache.onnx_cache_name(model, card, None) != name


@pytest.mark.slow
def test_fbp_unet_onnx_matches_torch(tmp_path):
    from fbp_landcover.engine.models.card import ModelCard
    from fbp_landcover.engine.models.fbpmodel import save_checkpoint

    model = fbp_unet_with_stats(seed=4)
    path = tmp_path / "unet.fbpmodel"
    card = ModelCard(name="unet", provenance={"trained_on": "untrained random weights"})
    save_checkpoint(path, model, card)
    onnx = make_backend(model, ModelCard(name="unet"), str(path), backend="onnx")
    ref = make_backend(model, ModelCard(name="unet"), str(path), backend="torch", device="cpu")
    for shape in [(1, 64, 64), (2, 48, 80)]:
        batch = _batch(*shape, seed=2)
        _agree(onnx(batch), ref(batch))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_backend_matches_cpu_within_mixed_precision_tolerance(tmp_path):
    model, card, where = load_model(str(tiny_checkpoint(tmp_path / "t.fbpmodel")))
    cpu = make_backend(model, card, where, backend="torch", device="cpu")(_batch(2, 64, 64))
    gpu_backend = make_backend(model, card, where)
    assert gpu_backend.device == "cuda" and gpu_backend.reason.startswith("CUDA: ")
    gpu = gpu_backend(_batch(2, 64, 64))
    assert gpu.dtype == np.float32 and gpu.shape == cpu.shape
    assert np.abs(gpu - cpu).max() < 0.05  # bf16/fp16 autocast
    assert (gpu.argmax(1) == cpu.argmax(1)).mean() > 0.95


def test_a_head_that_upsamples_gets_its_softmax_before_the_upsampling(tmp_path, no_cuda):
    """smp FPN (the compact preset): probabilities = bilinear 4x upsampling of the 1/4-resolution softmax; the
    model itself is left as it was, and the torch and onnxruntime backends compute the same thing."""
    from fbp_landcover.engine.models import build_model, probability_model
    from fbp_landcover.engine.models.card import ModelCard
    from fbp_landcover.engine.models.fbpmodel import save_checkpoint
    from fbp_landcover.engine.models.presets import preset

    torch.manual_seed(0)
    card = ModelCard(name="fpn", **preset("compact"), provenance={"trained_on": "random weights, a test"})
    assert card.smp_arch == "FPN"
    model = build_model(card)
    x = torch.from_numpy(_batch(2, 96, 64))
    low = {}
    hook = model.segmentation_head[0].register_forward_hook(lambda m, i, o: low.update(logits=o))
    with torch.inference_mode():
        logits = model(x)
        hook.remove()
        probs = probability_model(model)(x)
        again = model(x)
    assert low["logits"].shape[-2:] == (24, 16) and logits.shape == probs.shape == (2, 25, 96, 64)
    upsample = model.segmentation_head[1]
    assert isinstance(upsample,
                      torch.nn.Upsample) and upsample.scale_factor == 4 and upsample.mode == "bilinear"
    expected = torch.nn.functional.interpolate(torch.softmax(low["logits"], 1), scale_factor=4,
                                               mode="bilinear",
                                               align_corners=upsample.align_corners)
    np.testing.assert_allclose(probs.numpy(), expected.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(probs.sum(1).numpy(), 1.0, atol=1e-5)
    np.testing.assert_array_equal(again.numpy(), logits.numpy())  # the model still gives its logits
    path = tmp_path / "fpn.fbpmodel"
    save_checkpoint(path, model, card)
    loaded, card2, where = load_model(str(path))
    by_torch = make_backend(loaded, card2, where, backend="torch")(_batch(2, 96, 64))
    by_onnx = make_backend(loaded, card2, where, backend="onnx")(_batch(2, 96, 64))
    np.testing.assert_allclose(by_torch, probs.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(by_onnx, by_torch, atol=1e-5)
    # the coarse form (what the CPU mapping blends): the 1/4-resolution softmax, from both backends
    coarse_torch = make_backend(loaded, card2, where, backend="torch", device="cpu")
    coarse_onnx = make_backend(loaded, card2, where, backend="onnx")
    assert coarse_torch.scale == coarse_onnx.scale == 4
    low_probs = torch.softmax(low["logits"], 1).numpy()
    np.testing.assert_allclose(coarse_torch.coarse(_batch(2, 96, 64)), low_probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(coarse_onnx.coarse(_batch(2, 96, 64)), low_probs, atol=1e-5)
