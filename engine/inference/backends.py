"""Inference backends: a normalised (N,4,h,w) float32 batch in, (N,25,h,w) float32 softmax probabilities out.

- torch on CUDA (autocast bf16 or fp16, channels_last, inference_mode) when a CUDA device is present;
- onnxruntime on the CPU: the model (with its softmax) exported once per checkpoint with
  ``torch.onnx.export(dynamo=True)``, dynamic batch/height/width, cached beside the checkpoint as
  ``<name>.<sha256[:16]>.onnx`` (or under ``~/.cache/fbp_landcover/onnx`` when that folder is read-only);
- torch on the CPU (fp32) otherwise.
``auto`` = torch on CUDA; on the CPU onnxruntime when it imports and exports, else torch, with the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FbpError
from ..io.atomic import atomic_path
from ..models.checkpoints import ModelCard, file_sha256, model_stem
from ..models.torch_import import import_torch

BACKENDS = ("auto", "torch", "onnx")
DEVICES = ("auto", "cpu", "cuda")
ONNX_OPSET = 18
# Part of the ONNX cache key: bump it when export_onnx changes what it writes, so old exports are replaced.
# 2: softmax written out as exp/sum (onnxruntime's Softmax over NCHW channels cost 70-84 % of a compact
#    model's run, bench/README.md). 3: softmax before a head's final upsampling (engine.models).
EXPORT_VERSION = 3


class Backend:
    """A callable: normalised float32 (N,4,h,w) -> float32 (N,25,h,w) class probabilities."""

    name: str  # "torch" | "onnx"
    device: str  # "cpu" | "cuda"
    reason: str  # one line for the user: why this backend/device

    def __call__(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} on {self.device}: {self.reason}>"


class TorchBackend(Backend):
    """torch inference; on CUDA with autocast (bf16 where supported, else fp16) and channels_last."""

    def __init__(self, model: Any, device: str, reason: str) -> None:
        torch = import_torch()
        self.name = "torch"
        self.device = device
        self.reason = reason
        self._torch = torch
        self._device = torch.device(device)
        from ..models import probability_model

        self.model = model.eval().to(self._device)
        self._amp_dtype = None
        # On a GPU the prediction loop keeps blending on the device (engine.predict._DeviceOps).
        self.device_blend = device == "cuda"
        if device == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
            self._amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self._probabilities = probability_model(self.model)  # the same function the ONNX export computes

    def device_probabilities(self, x: Any) -> Any:
        """Normalised float32 tensor (N,4,h,w) on this backend's device -> softmax probabilities there."""
        torch = self._torch
        with torch.inference_mode():
            if self._amp_dtype is not None:
                x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cuda", dtype=self._amp_dtype):
                    return self._probabilities(x).float()  # the softmax itself runs in float32
            return self._probabilities(x)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = self._torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        return self.device_probabilities(x.to(self._device, non_blocking=True)).cpu().numpy()


class OnnxBackend(Backend):
    """onnxruntime on the CPU with as many intra-op threads as there are CPU cores."""

    def __init__(self, onnx_path: Path, reason: str) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Without onnxruntime's CPU arena the same runs take the same time (measured: 1.07-1.39 s per
        # 1024² window either way) but the process stays at ~190 MB instead of growing past 1 GB.
        options.enable_cpu_mem_arena = False
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name
        self.onnx_path = Path(onnx_path)
        self.name = "onnx"
        self.device = "cpu"
        self.reason = reason

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run(None, {self._input: x})[0].astype(np.float32, copy=False)


def cuda_device_name() -> str | None:
    """The CUDA device's name, or None when torch sees no CUDA device."""
    torch = import_torch()
    try:
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # a broken driver counts as no device
        return None
    return None


def make_backend(
    model: Any,
    card: ModelCard,
    model_path: str | os.PathLike | None,
    *,
    backend: str = "auto",
    device: str = "auto",
) -> Backend:
    """Choose and build the backend. ``model_path`` is the file the weights came from (keys the ONNX cache);
    pass None for weights that exist only in memory (the cache is then keyed by the weights themselves)."""
    if backend not in BACKENDS:
        raise FbpError(f"The backend {backend!r} is unknown; use one of {', '.join(BACKENDS)}.")
    if device not in DEVICES:
        raise FbpError(f"The device {device!r} is unknown; use one of {', '.join(DEVICES)}.")
    gpu = cuda_device_name()
    if device == "cuda" and gpu is None:
        raise FbpError(
            "The device 'cuda' was requested but torch sees no CUDA device (CPU-only torch or no GPU); "
            "use device 'auto' or 'cpu'."
        )
    if backend == "onnx" and device == "cuda":
        raise FbpError("The onnx backend runs on the CPU only; use backend 'torch' for device 'cuda'.")
    use_cuda = gpu is not None and device != "cpu" and backend != "onnx"
    if use_cuda:
        return TorchBackend(model, "cuda", f"CUDA: {gpu}")
    if device == "cpu":
        cpu_why = "CPU — requested"
    elif backend == "onnx" and gpu is not None:
        cpu_why = "CPU — the onnx backend was requested"
    else:
        cpu_why = "CPU — no CUDA device found"
    if backend == "torch":
        return TorchBackend(model, "cpu", f"{cpu_why}; torch (fp32)")
    try:
        onnx_path = onnx_model_path(model, card, model_path)
        return OnnxBackend(onnx_path, f"{cpu_why}; onnxruntime ({os.cpu_count()} threads)")
    except Exception as exc:  # noqa: BLE001 - any failure falls back to torch, with the reason
        if backend == "onnx":
            if isinstance(exc, FbpError):
                raise
            raise FbpError(
                f"The onnx backend could not be prepared for {model_path or card.name} "
                f"({type(exc).__name__}: {str(exc)[:200]}); use backend 'torch' or 'auto'."
            ) from None
        return TorchBackend(
            model,
            "cpu",
            f"{cpu_why}; torch (fp32) — onnxruntime unavailable ({type(exc).__name__}: {str(exc)[:120]})",
        )


# --- ONNX export and its cache ----------------------------------------------------------------


def cache_dir() -> Path:
    """Fallback ONNX cache: ``$XDG_CACHE_HOME/fbp_landcover/onnx`` or ``~/.cache/fbp_landcover/onnx``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fbp_landcover" / "onnx"


def _weights_sha256(model: Any) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def export_key(weights_sha256: str) -> str:
    """16 hex digits naming an export: the weights' sha256 and the export format's version."""
    return hashlib.sha256(f"{weights_sha256}:onnx-export-{EXPORT_VERSION}".encode()).hexdigest()[:16]


def onnx_cache_name(model: Any, card: ModelCard, model_path: str | os.PathLike | None) -> str:
    """``<name>.<export_key(the checkpoint's sha256)>.onnx``."""
    if model_path is not None:
        return f"{model_stem(model_path)}.{export_key(file_sha256(model_path))}.onnx"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", card.name or "model")
    return f"{safe}.{export_key(_weights_sha256(model))}.onnx"


def onnx_model_path(model: Any, card: ModelCard, model_path: str | os.PathLike | None) -> Path:
    """The cached ONNX file for this checkpoint, exported now if missing (atomic: temp file, then rename)."""
    import onnxruntime  # noqa: F401 - fail early (and fall back) when it is not installed

    name = onnx_cache_name(model, card, model_path)
    folders = []
    if model_path is not None:
        folders.append(Path(model_path).resolve().parent)
    folders.append(cache_dir())
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    last_error: Exception | None = None
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(folder / name) as tmp:
                export_onnx(model, tmp)
        except OSError as exc:  # a folder we cannot write: try the next one
            last_error = exc
            continue
        _remove_stale(folder, name)
        return folder / name
    raise OSError(f"no writable folder for the ONNX cache ({last_error})")


def _remove_stale(folder: Path, keep: str) -> None:
    """Delete older exports of the same model (same name, another hash)."""
    stem = keep[: -len(".0123456789abcdef.onnx")]
    pattern = re.compile(re.escape(stem) + r"\.[0-9a-f]{16}\.onnx$")
    for other in folder.glob(stem + ".*.onnx"):
        if other.name != keep and pattern.match(other.name):
            with contextlib.suppress(OSError):
                other.unlink()


def export_onnx(model: Any, path: str | os.PathLike, example_size: int = 64) -> None:
    """Export ``probability_model(model)`` (softmax probabilities, engine.models) to ONNX with dynamic
    batch, height and width (weights inline).

    The softmax is written as exp(x - max) / sum: onnxruntime runs ONNX Softmax over axis 1 of an NCHW
    tensor by transposing, which took 0.85 s per 1024² window on 2 cores (70 % of the compact model's
    time); the element-wise form takes ~0.1 s and agrees to within 1e-6."""
    from ..models import probability_model

    torch = import_torch()
    model = model.eval().to("cpu")
    wrapper = probability_model(model)
    dynamic = torch.export.Dim.DYNAMIC
    example = torch.zeros(1, 4, example_size, example_size)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapper,
            (example,),
            dynamo=True,
            external_data=False,
            opset_version=ONNX_OPSET,
            input_names=["x"],
            output_names=["probabilities"],
            dynamic_shapes={"x": {0: dynamic, 2: dynamic, 3: dynamic}},
            verbose=False,
        )
        program.save(str(path), external_data=False)
