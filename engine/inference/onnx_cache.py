"""The ONNX export of a model's probabilities and its cache: exported once per checkpoint with
``torch.onnx.export(dynamo=True)``, dynamic batch/height/width, cached beside the checkpoint as
``<name>.<key>.onnx`` (or under ``~/.cache/fbp_landcover/onnx`` when that folder is read-only)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import os
import re
import warnings
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_path
from ..models.card import ModelCard, file_sha256, model_stem
from ..torch_import import import_torch

ONNX_OPSET = 18
# Part of the cache key: bump it when export_onnx changes what it writes, so old exports are replaced.
# 2: softmax written out as exp/sum. 3: softmax before a head's final upsampling (models.probability_model).
# 4: a head's final upsampling left out (the coarse probabilities; the backend upsamples when asked).
EXPORT_VERSION = 4


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


def _cache_folders(model_path: str | os.PathLike | None) -> list[Path]:
    folders = []
    if model_path is not None:
        folders.append(Path(model_path).resolve().parent)
    folders.append(cache_dir())
    return folders


def cached_onnx(model: Any, card: ModelCard, model_path: str | os.PathLike | None,
                name: str | None = None) -> Path | None:
    """The ONNX file already exported for this checkpoint (``name``: its cache name when known), or None
    (then the first CPU run exports it)."""
    name = name or onnx_cache_name(model, card, model_path)
    return next((folder / name for folder in _cache_folders(model_path) if (folder / name).is_file()), None)


def onnx_model_path(model: Any, card: ModelCard, model_path: str | os.PathLike | None) -> Path:
    """The cached ONNX file for this checkpoint, exported now if missing (atomic: temp file, then rename)."""
    importlib.import_module("onnxruntime")  # fail early (and fall back) when it is not installed

    name = onnx_cache_name(model, card, model_path)
    folders = _cache_folders(model_path)
    found = cached_onnx(model, card, model_path, name)
    if found is not None:
        return found
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
    """Export ``probability_model(model, coarse=True)`` (softmax probabilities, before a head's final
    upsampling where it has one: engine.models) to ONNX with dynamic batch, height and width (weights inline).

    The softmax is written as exp(x - max) / sum: onnxruntime runs ONNX Softmax over axis 1 of an NCHW
    tensor by transposing, which cost most of a compact model's time; the element-wise form agrees to
    within 1e-6 (bench/README.md has the profile)."""
    from ..models import probability_model

    torch = import_torch()
    model = model.eval().to("cpu")
    wrapper = probability_model(model, coarse=True)
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


PREPARE_MESSAGE = ("Preparing the model's fast CPU form (an ONNX export, once per model: typically 10-60 s, "
                   "its length cannot be estimated)")


def prepare(model_path: str | os.PathLike) -> tuple[Path | None, str]:
    """Export a registered model's ONNX form now, so that its first map is as fast as the next one.

    Returns (the ONNX file or None, what happened in words). Never raises for an export that fails: the
    model then runs with torch, as mapping would have decided anyway."""
    from ..models import devices
    from ..models.loading import load_model

    if devices.cuda_device_name():
        return None, "not needed: a CUDA GPU runs the model with torch"
    model, card, path = load_model(str(model_path))
    try:
        onnx = onnx_model_path(model, card, path)
    except Exception as exc:  # the reason is said; mapping falls back to torch the same way
        return None, f"not prepared ({type(exc).__name__}: {str(exc)[:160]}); maps will run with torch"
    return onnx, f"ready: {onnx.name}"
