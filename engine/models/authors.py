"""The authors' published DPA checkpoints (``unet_<city>.pth.tar``): ``torch.save`` pickles read with
``torch.load(weights_only=True)`` (plus numpy scalar types, so a numpy ``best_pred`` loads); anything that
would run code is refused. The city in the file name gives the sensor and the authors' normalisation
statistics."""

from __future__ import annotations

import os
import pickle
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import SOFTWARE
from ..classes import NUM_OUTPUTS
from ..errors import FbpError
from ..torch_import import import_torch
from .card import EXTENSION, IN_BANDS, ModelCard, file_sha256, model_stem, now_iso
from .fbpmodel import not_a_checkpoint, require_file, save_state_dict, sniff

if TYPE_CHECKING:  # pragma: no cover
    from ..io.normalize import Stats

# The authors' five target cities: the sensor each one's test image came from.
CITY_SENSORS = {
    "beijing": "sentinel2",
    "guangzhou": "sentinel2",
    "wuhan": "gaofen1",
    "chengdu": "planetscope",
    "shanghai": "planetscope",
}
# Where the authors publish them: their reference code's README links the checkpoints ("model_DPA"); they
# are downloaded by the user in a browser, never by this software.
AUTHORS_MODELS_PAGE = "https://github.com/x-ytong/DPA#prediction"


@dataclass(frozen=True)
class CatalogEntry:
    """One of the authors' published checkpoints, as the 'Get models' list shows it."""

    city: str
    sensor: str  # our profile name
    sensor_title: str
    pixel_size: str  # the sensor's pixel size and the size the model maps at
    file_name: str

    @property
    def city_title(self) -> str:
        return self.city.capitalize()


def authors_catalog() -> list[CatalogEntry]:
    """The five published checkpoints, from the facts above and the sensor profiles."""
    from ..io.sensors import PROFILES

    out = []
    for city, sensor in CITY_SENSORS.items():
        profile = PROFILES[sensor]
        size = f"{profile.gsd:g} m"
        if profile.working_gsd and profile.working_gsd != profile.gsd:
            size += f" (mapped at {profile.working_gsd:g} m)"
        out.append(CatalogEntry(city, sensor, profile.title.split(" (")[0], size, f"unet_{city}.pth.tar"))
    return out


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
    torch = import_torch()
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols: our sentence says enough
            return torch.load(str(src), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if re.search(r"GLOBAL [\w.]+|Unsupported global|not an allowed global|Unsupported class", text):
            found = re.search(r"GLOBAL ([\w.]+)", text)
            what = found.group(1) if found else "an unknown global"
            raise FbpError(
                f"The checkpoint {src} is refused as unsafe: loading it would run code "
                f"({what}) instead of just reading weights; "
                "use a checkpoint from a trusted source that holds only tensors."
            ) from None
        if re.search(r"weights_only|Unsupported operand|Unsupported class", text):  # torch's advice stays out
            raise FbpError(
                f"The checkpoint {src} is refused as unsafe: it holds objects other than weights, which only "
                "running its code could read; use a checkpoint from a trusted source that holds only tensors."
            ) from None
        first = text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__
        raise FbpError(
            f"The checkpoint {src} is damaged or truncated ({first}); copy or download it again."
        ) from None
    except Exception as exc:  # any other failure of a weights-only load is a damaged file
        raise FbpError(
            f"The checkpoint {src} is damaged or truncated ({type(exc).__name__}: {str(exc)[:120]}); "
            "copy or download it again."
        ) from None


def _extract_state_dict(obj: Any, src: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state dict with 'module.' stripped, extra info such as epoch and best_pred)."""
    torch = import_torch()
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
            f"The file {src} is a PyTorch file but holds no model weights "
            "(expected a state dict or {'state_dict': ...}); "
            "use one of the authors' unet_<city>.pth.tar files."
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
    torch = import_torch()
    from .fbp_unet import FbpUNet

    out_w = state.get("outc.conv.weight")
    if out_w is not None and out_w.ndim == 4 and out_w.shape[0] != NUM_OUTPUTS:
        raise FbpError(
            f"The checkpoint {src} predicts {out_w.shape[0]} classes, "
            f"but fbp_landcover needs the {NUM_OUTPUTS} outputs of the Five-Billion-Pixels scheme "
            "(unlabeled + 24 classes); use a model trained on FBP."
        )
    in_w = state.get("inc.double_conv.0.weight")
    if in_w is not None and in_w.ndim == 4 and in_w.shape[1] != len(IN_BANDS):
        raise FbpError(
            f"The checkpoint {src} takes {in_w.shape[1]} input bands, but the FBP U-Net takes 4 (NIR, R, G, "
            "B); use a 4-band FBP model."
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
    src = require_file(src)
    kind = sniff(src)
    if kind not in ("torch-zip", "torch-pickle"):
        if kind == "fbpmodel":
            raise FbpError(f"The file {src} is already an fbp_landcover {EXTENSION} model; use it as it is.")
        raise not_a_checkpoint(src, kind)
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
        "software": SOFTWARE,
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
