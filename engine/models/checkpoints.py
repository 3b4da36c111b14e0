"""Model checkpoints: our ``.fbpmodel`` format, the ModelCard, and import of the authors' files.

Our format is a safetensors file (tensors only, never unpickled) whose metadata entry
``fbp_landcover`` holds the ModelCard as JSON. The authors' ``unet_<city>.pth.tar`` files are
``torch.save`` pickles; they are read with ``torch.load(weights_only=True)`` (plus numpy scalar
types, so a numpy ``best_pred`` loads) and anything that would run code is refused.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import pickle
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..classes import CLASSES
from ..errors import FbpError
from ..io.atomic import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from ..io.normalize import Stats

FORMAT_VERSION = 1
EXTENSION = ".fbpmodel"
METADATA_KEY = "fbp_landcover"
IN_BANDS = ("nir", "r", "g", "b")
NUM_OUTPUTS = len(CLASSES)

# The authors' five target cities (fbp.md §2): the sensor each one's test image came from.
CITY_SENSORS = {
    "beijing": "sentinel2",
    "guangzhou": "sentinel2",
    "wuhan": "gaofen1",
    "chengdu": "planetscope",
    "shanghai": "planetscope",
}


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
        version = int(data.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise FbpError(
                f"{source} was written by a newer fbp_landcover (model format {version}, this version reads "
                f"{FORMAT_VERSION}); update the plugin to use it."
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
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def software_version() -> str:
    return f"fbp_landcover {__version__}"


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_stem(path: str | os.PathLike) -> str:
    """The model's name from its file: ``unet_beijing.pth.tar`` -> ``unet_beijing``, ``x.fbpmodel`` -> ``x``.
    """
    name = Path(path).name
    for suffix in (".pth.tar", ".pth", ".pt", ".tar", ".ckpt", EXTENSION, ".safetensors"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return Path(name).stem or name


# --- what kind of file is this? ---------------------------------------------------------------


def sniff(path: str | os.PathLike) -> str:
    """Guess a file's kind from its first bytes: 'fbpmodel', 'safetensors', 'torch-zip', 'torch-pickle',
    'geotiff', 'image', 'empty', 'text' or 'unknown'."""
    with open(path, "rb") as handle:
        head = handle.read(64)
        size = os.fstat(handle.fileno()).st_size
    if not head:
        return "empty"
    if len(head) >= 9 and head[8:9] == b"{":
        length = int.from_bytes(head[:8], "little")
        if 2 <= length <= size:
            return "fbpmodel" if b'"' + METADATA_KEY.encode() in _read_header(path, length) else "safetensors"
    if head.startswith(b"PK\x03\x04"):
        return "torch-zip"
    if head[0] == 0x80 and len(head) > 1 and 2 <= head[1] <= 5:
        return "torch-pickle"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "geotiff"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8")):
        return "image"
    try:
        head.decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "unknown"


def _read_header(path: str | os.PathLike, length: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(8)
        return handle.read(min(length, 1 << 24))


_KIND_WORDS = {
    "empty": "an empty file",
    "text": "a text file",
    "geotiff": "a GeoTIFF raster",
    "image": "an image",
    "unknown": "an unrecognised binary file",
    "safetensors": "a safetensors file without an fbp_landcover model card",
}


def _not_a_checkpoint(path: str | os.PathLike, kind: str) -> FbpError:
    return FbpError(
        f"The file {path} is not a model checkpoint (it looks like {_KIND_WORDS.get(kind, kind)}); "
        f"expected an fbp_landcover {EXTENSION} file or one of the authors' unet_<city>.pth.tar files."
    )


def _require_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FbpError(
            f"The model file {path} does not exist; check the path or pick a model from the models folder."
        )
    return path


# --- our format -------------------------------------------------------------------------------


def save_checkpoint(path: str | os.PathLike, model: Any, card: ModelCard) -> ModelCard:
    """Write ``model``'s weights and ``card`` to ``path`` (.fbpmodel) atomically; returns the card written.

    Fills provenance 'created' and 'software' when the card lacks them.
    """
    state = model.state_dict() if hasattr(model, "state_dict") else model
    return save_state_dict(path, state, card)


def save_state_dict(path: str | os.PathLike, state: dict[str, Any], card: ModelCard) -> ModelCard:
    """Write a state dict and its card to ``path`` atomically (temp file in the same folder, then rename)."""
    from safetensors.torch import save_file

    provenance = dict(card.provenance)
    provenance.setdefault("created", now_iso())
    provenance.setdefault("software", software_version())
    from .smp_models import normalise_arch_kwargs

    written = dataclasses.replace(
        card,
        provenance=provenance,
        arch_kwargs=normalise_arch_kwargs(card.arch_kwargs),
        in_bands=list(card.in_bands),
        class_names=list(card.class_names),
    )
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items() if hasattr(v, "detach")}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: written.to_json()})
    return written


def read_card(path: str | os.PathLike) -> ModelCard:
    """Only the card of one of our checkpoints (reads the header, not the weights)."""
    from safetensors import safe_open

    path = _require_file(path)
    kind = sniff(path)
    if kind != "fbpmodel":
        if kind in ("torch-zip", "torch-pickle"):
            raise FbpError(
                f"The file {path} is a PyTorch pickle, not an fbp_landcover {EXTENSION} file; "
                "import it first (fbp-landcover models add, or the plugin's model manager)."
            )
        raise _not_a_checkpoint(path, kind)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own error type
        raise FbpError(
            f"The model file {path} is damaged or truncated ({exc}); copy or download it again."
        ) from None
    if METADATA_KEY not in metadata:
        raise _not_a_checkpoint(path, "safetensors")
    return ModelCard.from_json(metadata[METADATA_KEY], source=str(path))


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], ModelCard]:
    """Read one of our checkpoints: (state dict of CPU tensors, card). Nothing is unpickled."""
    from safetensors.torch import load_file

    card = read_card(path)
    try:
        state = load_file(str(path), device="cpu")
    except Exception as exc:
        raise FbpError(
            f"The model file {path} is damaged or truncated ({exc}); copy or download it again."
        ) from None
    return state, card


# --- the authors' checkpoints -----------------------------------------------------------------


def _numpy_safe_globals() -> list[Any]:
    """numpy scalar and dtype reconstructors (data only) under their numpy 1.x and 2.x names."""
    import numpy as np

    core = getattr(np, "_core", None) or np.core
    multiarray = core.multiarray
    items: list[Any] = [multiarray.scalar, np.dtype, multiarray._reconstruct, np.ndarray]
    items += [(multiarray.scalar, "numpy._core.multiarray.scalar"),
              (multiarray.scalar, "numpy.core.multiarray.scalar"),
              (multiarray._reconstruct, "numpy._core.multiarray._reconstruct"),
              (multiarray._reconstruct, "numpy.core.multiarray._reconstruct")]
    for name in ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool_"):
        dtype_class = type(np.dtype(getattr(np, name)))
        items.append(dtype_class)
        pretty = {"bool_": "Bool"}.get(name, name.capitalize())
        items.append((dtype_class, f"numpy.dtypes.{pretty}DType"))
    return items


def _torch_load_weights(src: Path) -> Any:
    torch = _torch()
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(str(src), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if re.search(r"GLOBAL [\w.]+|Unsupported global|not an allowed global|Unsupported class", text):
            found = re.search(r"GLOBAL ([\w.]+)", text)
            what = found.group(1) if found else "an unknown global"
            raise FbpError(
                f"The checkpoint {src} is refused as unsafe: loading it would run code ({what}) instead of "
                "just reading weights; use a checkpoint from a trusted source that holds only tensors."
            ) from None
        raise FbpError(
            f"The checkpoint {src} is damaged or truncated ({text}); copy or download it again."
        ) from None
    except Exception as exc:  # noqa: BLE001 - any other failure of a weights-only load is a damaged file
        raise FbpError(
            f"The checkpoint {src} is damaged or truncated ({type(exc).__name__}: {str(exc)[:120]}); "
            "copy or download it again."
        ) from None


def _torch():
    from .torch_import import import_torch

    return import_torch()


def _extract_state_dict(obj: Any, src: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state dict with 'module.' stripped, extra info such as epoch and best_pred)."""
    torch = _torch()
    extra: dict[str, Any] = {}
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(obj.get(key), dict):
                for info in ("epoch", "best_pred"):
                    if info in obj:
                        extra[info] = obj[info]
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(torch.is_tensor(v) for v in obj.values()):
        raise FbpError(
            f"The file {src} is a PyTorch file but holds no model weights (expected a state dict or "
            "{'state_dict': ...}); use one of the authors' unet_<city>.pth.tar files."
        )
    state = {}
    for key, value in obj.items():
        key = str(key)
        while key.startswith("module."):
            key = key[len("module."):]
        state[key] = value
    return state, extra


def validate_fbp_unet_state(state: dict[str, Any], src: str | os.PathLike) -> None:
    """Raise FbpError unless ``state`` has exactly the FBP U-Net's keys and shapes (4 bands, 25 classes)."""
    torch = _torch()
    from .fbp_unet import FbpUNet

    out_w = state.get("outc.conv.weight")
    if out_w is not None and out_w.ndim == 4 and out_w.shape[0] != NUM_OUTPUTS:
        raise FbpError(
            f"The checkpoint {src} predicts {out_w.shape[0]} classes, but fbp_landcover needs the "
            f"{NUM_OUTPUTS} outputs of the Five-Billion-Pixels scheme (unlabeled + 24 classes); "
            "use a model trained on FBP."
        )
    in_w = state.get("inc.double_conv.0.weight")
    if in_w is not None and in_w.ndim == 4 and in_w.shape[1] != len(IN_BANDS):
        raise FbpError(
            f"The checkpoint {src} takes {in_w.shape[1]} input bands, but the FBP U-Net takes 4 "
            "(NIR, R, G, B); use a 4-band FBP model."
        )
    with torch.device("meta"):
        reference = {k: tuple(v.shape) for k, v in FbpUNet().state_dict().items()}
    missing = [k for k in reference if k not in state]
    unexpected = [k for k in state if k not in reference]
    wrong = [f"{k} {tuple(state[k].shape)} != {reference[k]}" for k in reference
             if k in state and tuple(state[k].shape) != reference[k]]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_first(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_first(unexpected)})")
        if wrong:
            parts.append(f"{len(wrong)} of the wrong shape ({'; '.join(wrong[:2])})")
        raise FbpError(
            f"The checkpoint {src} does not match the authors' FBP U-Net: weights {' and '.join(parts)}; "
            "use one of the authors' unet_<city>.pth.tar files."
        )


def _first(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def city_from_name(path: str | os.PathLike) -> str | None:
    """The target city named in an authors' file name (``unet_beijing.pth.tar`` -> ``beijing``), or None."""
    name = Path(path).name.lower()
    for city in CITY_SENSORS:
        if re.search(rf"(^|[^a-z]){city}([^a-z]|$)", name):
            return city
    return None


def _city_stats(city: str) -> Stats | None:
    from ..io.normalize import CITY_STATS

    for key, value in CITY_STATS.items():
        if key.lower() == city.lower():
            return value
    return None


def read_authors_checkpoint(
    src: str | os.PathLike, city: str | None = None, sensor: str | None = None, stats: Stats | None = None
) -> tuple[dict[str, Any], ModelCard]:
    """Read an authors' ``unet_<city>.pth.tar`` (or a bare FBP U-Net state dict) safely.

    Returns (state dict, card); the card's stats and sensor come from the city in the file name unless given.
    """
    src = _require_file(src)
    kind = sniff(src)
    if kind not in ("torch-zip", "torch-pickle"):
        if kind == "fbpmodel":
            raise FbpError(f"The file {src} is already an fbp_landcover {EXTENSION} model; use it as it is.")
        raise _not_a_checkpoint(src, kind)
    obj = _torch_load_weights(src)
    state, extra = _extract_state_dict(obj, src)
    validate_fbp_unet_state(state, src)
    city = (city or city_from_name(src) or "").lower() or None
    if city is not None and stats is None:
        stats = _city_stats(city)
    if sensor is None and city is not None:
        sensor = CITY_SENSORS.get(city)
    provenance: dict[str, Any] = {
        "trained_on": "Five-Billion-Pixels (Gaofen-2, source) with DPA adaptation"
        + (f" to the {city.capitalize()} target image" if city else " to an unnamed target"),
        "origin": "authors' DPA reference checkpoint (Tong, Xia, Zhu 2023)",
        "imported_from": src.name,
        "sha256": file_sha256(src),
        "created": now_iso(),
        "software": software_version(),
    }
    if city:
        provenance["city"] = city
    for info, value in extra.items():
        try:
            provenance[info] = value.item() if hasattr(value, "item") else (
                value if isinstance(value, (int, float, str)) else str(value))
        except (TypeError, ValueError):
            provenance[info] = str(value)
    card = ModelCard(
        name=model_stem(src),
        architecture="fbp_unet",
        gsd=4.0,
        stats=stats,
        sensor=sensor,
        provenance=provenance,
    )
    return state, card


def import_authors_checkpoint(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    city: str | None = None,
    sensor: str | None = None,
    stats: Stats | None = None,
) -> ModelCard:
    """Convert an authors' ``unet_<city>.pth.tar`` into our ``.fbpmodel`` at ``dst``; returns its card."""
    state, card = read_authors_checkpoint(src, city=city, sensor=sensor, stats=stats)
    card.name = model_stem(dst)
    return save_state_dict(dst, state, card)


# --- any model spec ---------------------------------------------------------------------------


def load_state_into(model: Any, state: dict[str, Any], path: str | os.PathLike) -> None:
    """``model.load_state_dict(state, strict=True)`` with a one-sentence FbpError on mismatch."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = "; ".join(line.strip() for line in first[1:3]) or first[0]
        raise FbpError(
            f"The weights in {path} do not fit the architecture its model card describes ({detail[:300]}); "
            "the file is inconsistent, re-create it."
        ) from None


def read_any(path: str | os.PathLike) -> tuple[dict[str, Any], ModelCard]:
    """(state dict, card) from our file or an authors' file (imported on the fly, nothing written)."""
    path = _require_file(path)
    kind = sniff(path)
    if kind in ("torch-zip", "torch-pickle"):
        return read_authors_checkpoint(path)
    return load_checkpoint(path)


def load_model(
    spec: str | os.PathLike, models_dir: str | os.PathLike | None = None
) -> tuple[Any, ModelCard, str]:
    """(model in eval mode, card, file path) for our checkpoint, a registered name, or an authors' file."""
    from . import build_model
    from .registry import resolve

    path = resolve(spec, models_dir)
    state, card = read_any(path)
    model = build_model(card)
    load_state_into(model, state, path)
    check_output_shape(model, card, path)
    return model.eval(), card, str(path)


def check_output_shape(model: Any, card: ModelCard, path: str | os.PathLike) -> None:
    """Run one small input through the model: FbpError unless it gives num_outputs maps of the input size."""
    from . import input_multiple

    torch = _torch()
    side = max(64, 2 * input_multiple(model))
    with torch.inference_mode():
        out = model.eval()(torch.zeros(1, len(card.in_bands), side, side))
    if tuple(out.shape) != (1, card.num_outputs, side, side):
        raise FbpError(
            f"The model in {path} turns a {side}x{side} input into an output of shape {tuple(out.shape)[1:]} "
            f"instead of ({card.num_outputs}, {side}, {side}); re-create it with options that keep the input "
            "size."
        )


__all__ = [
    "ModelCard", "save_checkpoint", "save_state_dict", "load_checkpoint", "read_card", "load_model",
    "import_authors_checkpoint", "read_authors_checkpoint", "validate_fbp_unet_state", "file_sha256",
    "model_stem", "sniff", "city_from_name", "EXTENSION",
]
