"""Loading any model spec (our file, a registered name, an authors' file) into a checked torch module."""

from __future__ import annotations

import os
from typing import Any

from ..errors import FbpError
from ..torch_import import import_torch
from . import build_model, input_multiple
from .authors import read_authors_checkpoint
from .card import IN_BANDS, ModelCard
from .fbpmodel import load_checkpoint, require_file, sniff
from .registry import resolve


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
    path = require_file(path)
    kind = sniff(path)
    if kind in ("torch-zip", "torch-pickle"):
        return read_authors_checkpoint(path)
    return load_checkpoint(path)


def load_model(
    spec: str | os.PathLike, models_dir: str | os.PathLike | None = None
) -> tuple[Any, ModelCard, str]:
    """(model in eval mode, card, file path) for our checkpoint, a registered name, or an authors' file."""
    path = resolve(spec, models_dir)
    state, card = read_any(path)
    if [b.lower() for b in card.in_bands] != list(IN_BANDS):
        raise FbpError(
            f"The model {path} takes {len(card.in_bands)} band(s) ({', '.join(map(str, card.in_bands))}), "
            "but "
            f"the engine gives every model the {len(IN_BANDS)} bands NIR, R, G, B of an image; use a model "
            "made for those four bands."
        )
    model = build_model(card)
    load_state_into(model, state, path)
    check_output_shape(model, card, path)
    return model.eval(), card, str(path)


def check_output_shape(model: Any, card: ModelCard, path: str | os.PathLike) -> None:
    """Run one small input through the model: FbpError unless it gives num_outputs maps of the input size."""
    torch = import_torch()
    side = max(64, 2 * input_multiple(model))
    with torch.inference_mode():
        out = model.eval()(torch.zeros(1, len(card.in_bands), side, side))
    if tuple(out.shape) != (1, card.num_outputs, side, side):
        raise FbpError(
            f"The model in {path} turns a {side}x{side} input into an output of shape "
            f"{tuple(out.shape)[1:]} instead of ({card.num_outputs}, {side}, {side}); "
            "re-create it with options that keep the input size."
        )


