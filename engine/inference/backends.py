"""Inference backends: a normalised (N,4,h,w) float32 batch in, (N,25,h,w) float32 softmax probabilities out.

A model whose head ends by upsampling (``scale`` 4: the smp FPN) also gives its probabilities before that
upsampling (``coarse``, (N,25,h/4,w/4)), which the CPU mapping blends at that resolution (inference.predict);
the ONNX export is that coarse form, and the full-resolution call upsamples it with the model's own module.

- torch on CUDA (autocast bf16 or fp16, channels_last, inference_mode) when a CUDA device is present;
- onnxruntime on the CPU: the model (with its softmax) exported once per checkpoint (onnx_cache);
- torch on the CPU (fp32) otherwise.
``auto`` = torch on CUDA; on the CPU onnxruntime when it imports and exports, else torch, with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FbpError
from ..models import devices
from ..models.card import ModelCard
from ..torch_import import import_torch
from .onnx_cache import onnx_model_path

BACKENDS = ("auto", "torch", "onnx")


class Backend:
    """A callable: normalised float32 (N,4,h,w) -> float32 (N,25,h,w) class probabilities."""

    name: str  # "torch" | "onnx"
    device: str  # "cpu" | "cuda"
    reason: str  # one line for the user: why this backend/device
    scale: int = 1  # input pixels per coarse output pixel along each axis (``coarse``)

    def __call__(self, batch: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def coarse(self, batch: np.ndarray) -> np.ndarray:
        """(N,25,h/scale,w/scale) probabilities before the head's final upsampling (= the call at 1)."""
        return self(batch)

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
        from ..models import output_scale, probability_model

        self.model = model.eval().to(self._device)
        self._amp_dtype = None
        # On a GPU the prediction loop keeps blending on the device (inference.predict._DeviceOps).
        self.device_blend = device == "cuda"
        if device == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
            self._amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self._probabilities = probability_model(self.model)
        # The CPU mapping blends the coarse probabilities; a GPU blends at full resolution on the device.
        self.scale = output_scale(self.model) if device == "cpu" else 1
        self._coarse = probability_model(self.model, coarse=True)  # the function the ONNX export computes

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

    def coarse(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self._device)
            return self._coarse(x).cpu().numpy()


class OnnxBackend(Backend):
    """onnxruntime on the CPU with as many intra-op threads as there are CPU cores."""

    def __init__(self, onnx_path: Path, reason: str, upsample: Any = None) -> None:
        """``upsample``: the model's final upsampling when the export is its coarse form (scale > 1)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Without onnxruntime's CPU arena the runs take the same time but the process stays small instead of
        # growing by the arena's size (measured; bench/README.md).
        options.enable_cpu_mem_arena = False
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name
        self.onnx_path = Path(onnx_path)
        self.name = "onnx"
        self.device = "cpu"
        self.reason = reason
        self._upsample = upsample
        self.scale = int(upsample.scale_factor) if upsample is not None else 1

    def coarse(self, batch: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        return self.session.run(None, {self._input: x})[0].astype(np.float32, copy=False)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        probs = self.coarse(batch)
        if self._upsample is None:
            return probs
        torch = import_torch()
        with torch.inference_mode():
            return self._upsample(torch.from_numpy(probs)).numpy()


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
    chosen = devices.pick_device(device)
    gpu = devices.cuda_device_name()
    if backend == "onnx" and device == "cuda":
        raise FbpError("The onnx backend runs on the CPU only; use backend 'torch' for device 'cuda'.")
    use_cuda = chosen == "cuda" and backend != "onnx"
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
        from ..models import final_upsample

        onnx_path = onnx_model_path(model, card, model_path)
        return OnnxBackend(onnx_path, f"{cpu_why}; onnxruntime ({os.cpu_count()} threads)",
                           final_upsample(model))
    except Exception as exc:  # any failure falls back to torch, with the reason
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
