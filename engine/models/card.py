"""The model card: everything needed to use a model without asking the user (architecture, bands, classes,
GSD, normalisation statistics, sensor, provenance), and a model file's name and digest."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..classes import CLASSES, NUM_OUTPUTS
from ..errors import FbpError

if TYPE_CHECKING:  # pragma: no cover
    from ..io.normalize import Stats

FORMAT_VERSION = 1
EXTENSION = ".fbpmodel"
IN_BANDS = ("nir", "r", "g", "b")


@dataclass(kw_only=True)
class ModelCard:
    """Everything needed to use a model without asking the user: architecture, bands, classes, GSD, stats."""

    format_version: int = FORMAT_VERSION
    name: str = "model"
    architecture: str = "fbp_unet"  # "fbp_unet" | "smp"
    smp_arch: str | None = None  # e.g. "Unet", "DeepLabV3Plus"
    encoder: str | None = None  # e.g. "resnet34", "tu-mobilenetv3_small_050"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)  # extra smp arguments (encoder_depth, ...)
    in_bands: list[str] = field(default_factory=lambda: list(IN_BANDS))
    num_outputs: int = NUM_OUTPUTS
    class_names: list[str] = field(default_factory=lambda: [c.name for c in CLASSES])
    gsd: float = 4.0
    stats: Stats | None = None  # normalisation the model was trained/adapted with (NIR,R,G,B)
    sensor: str | None = None  # the sensor profile the model was trained/adapted for
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (stats as {mean, std, source})."""
        from .smp_models import normalise_arch_kwargs

        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["stats"] = None if self.stats is None else _stats_to_dict(self.stats)
        out["arch_kwargs"] = normalise_arch_kwargs(self.arch_kwargs)
        out["in_bands"] = list(self.in_bands)
        out["class_names"] = list(self.class_names)
        out["provenance"] = dict(self.provenance)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "the checkpoint") -> ModelCard:
        """Build a card from its dict; refuses cards from a newer format and ignores unknown keys."""
        if not isinstance(data, dict):
            raise FbpError(f"The model card in {source} is not a JSON object (it is a "
                           f"{type(data).__name__}); the file is not one of our models, re-create it.")
        try:
            version = int(data.get("format_version", 0))
        except (TypeError, ValueError):
            raise FbpError(f"The model card in {source} has the format version "
                           f"{data.get('format_version')!r}, which is not a number; the file is damaged "
                           "or not one of our models, re-create it.") from None
        if version > FORMAT_VERSION:
            raise FbpError(
                f"{source} was written by a newer fbp_landcover (model format {version}, "
                f"this version reads {FORMAT_VERSION}); update the plugin to use it."
            )
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if kwargs.get("stats") is not None:
            kwargs["stats"] = _stats_from_dict(kwargs["stats"])
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str, source: str = "the checkpoint") -> ModelCard:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FbpError(
                f"The model card in {source} is not valid JSON ({exc}); re-create the checkpoint."
            ) from None
        if not isinstance(data, dict):
            raise FbpError(f"The model card in {source} is not a JSON object; re-create the checkpoint.")
        return cls.from_dict(data, source)


def _stats_to_dict(stats: Any) -> dict[str, Any]:
    if isinstance(stats, dict):
        return {"mean": list(stats["mean"]), "std": list(stats["std"]), "source": stats.get("source", "")}
    return {"mean": list(stats.mean), "std": list(stats.std), "source": stats.source}


def _stats_from_dict(data: Any) -> Stats:
    from ..io.normalize import Stats

    if isinstance(data, Stats):
        return data
    if not isinstance(data, dict):
        raise FbpError(
            f"The model card's normalisation statistics {data!r} are not a dict; re-create the checkpoint."
        )
    return Stats.from_dict(data)


def now_iso() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


_SHA256_CACHE: dict[tuple[str, int, int], str] = {}  # (real path, size, mtime ns) -> digest


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks; remembered while its size and mtime stay the same (one run
    asks for a checkpoint's digest several times: the ONNX cache key, the stage text, the metadata)."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if key not in _SHA256_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if len(_SHA256_CACHE) >= 64:
            _SHA256_CACHE.clear()
        _SHA256_CACHE[key] = digest.hexdigest()
    return _SHA256_CACHE[key]


def model_stem(path: str | os.PathLike) -> str:
    """The model's name from its file: ``unet_beijing.pth.tar`` -> ``unet_beijing``, ``x.fbpmodel`` -> ``x``.
    """
    name = Path(path).name
    for suffix in (".pth.tar", ".pth", ".pt", ".tar", ".ckpt", EXTENSION, ".safetensors"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return Path(name).stem or name


# The source memory kept beside a model (a class-stratified sample of its source patches, which the Siamese
# adaptation needs); it belongs to the model and travels with it wherever the model is copied.
MEMORY_SUFFIX = ".memory.npz"
COMPANIONS = (MEMORY_SUFFIX,)


def companion(path: str | os.PathLike, suffix: str) -> Path:
    """A file kept beside a model file: ``model.fbpmodel`` + ".memory.npz" -> ``model.memory.npz``."""
    path = Path(path)
    return path.parent / (model_stem(path) + suffix)
