"""Our model format, ``.fbpmodel``: a safetensors file (tensors only, never unpickled) whose metadata entry
``fbp_landcover`` holds the ModelCard as JSON; and telling it apart from other files by their first bytes."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from .. import SOFTWARE
from ..errors import FbpError
from ..io.atomic import atomic_path
from .card import EXTENSION, ModelCard, now_iso

METADATA_KEY = "fbp_landcover"


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


def not_a_checkpoint(path: str | os.PathLike, kind: str) -> FbpError:
    return FbpError(
        f"The file {path} is not a model checkpoint (it looks like {_KIND_WORDS.get(kind, kind)}); "
        f"expected an fbp_landcover {EXTENSION} file or one of the authors' unet_<city>.pth.tar files."
    )


def require_file(path: str | os.PathLike) -> Path:
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
    provenance.setdefault("software", SOFTWARE)
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

    path = require_file(path)
    kind = sniff(path)
    if kind != "fbpmodel":
        if kind in ("torch-zip", "torch-pickle"):
            raise FbpError(
                f"The file {path} is a PyTorch pickle, not an fbp_landcover {EXTENSION} file; "
                "import it first (fbp-landcover models add, or the plugin's model manager)."
            )
        raise not_a_checkpoint(path, kind)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own error type
        raise FbpError(
            f"The model file {path} is damaged or truncated ({exc}); copy or download it again."
        ) from None
    if METADATA_KEY not in metadata:
        raise not_a_checkpoint(path, "safetensors")
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
