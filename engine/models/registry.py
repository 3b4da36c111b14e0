"""The models folder: list the models in it, add one (importing the authors' files; a model's companions,
such as its source memory, come with it), resolve a name.

Default folder: ``$FBP_LANDCOVER_MODELS``, else ``~/.local/share/fbp_landcover/models``; the plugin
passes a folder inside the QGIS profile. A registered model is ``<folder>/<name>.fbpmodel``.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from ..errors import FbpError
from ..io.atomic import AtomicFiles
from .authors import import_authors_checkpoint
from .card import COMPANIONS, EXTENSION, ModelCard, companion, model_stem
from .fbpmodel import read_card, sniff

ENV_VAR = "FBP_LANDCOVER_MODELS"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def default_models_dir() -> Path:
    """``$FBP_LANDCOVER_MODELS`` or ``~/.local/share/fbp_landcover/models``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".local" / "share" / "fbp_landcover" / "models"


def _folder(folder: str | os.PathLike | None) -> Path:
    return default_models_dir() if folder is None else Path(folder).expanduser()


def list_models(folder: str | os.PathLike | None = None) -> list[tuple[str, ModelCard, Path]]:
    """(name, card, path) for every readable ``*.fbpmodel`` in the folder, sorted by name.

    Unreadable files are skipped (they are reported when resolved by name).
    """
    root = _folder(folder)
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.glob("*" + EXTENSION)):
        if path.name.startswith("."):
            continue
        try:
            card = read_card(path)
        except FbpError:
            continue
        found.append((model_stem(path), card, path))
    return found


def add_model(
    src: str | os.PathLike,
    folder: str | os.PathLike | None = None,
    name: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Register a model file (copy ours, import an authors' ``.pth.tar``); returns its path in the folder."""
    src = Path(src)
    if not src.is_file():
        raise FbpError(f"The model file {src} does not exist; check the path.")
    name = name or model_stem(src)
    if name.lower().endswith(EXTENSION):  # --name x.fbpmodel means x, not x.fbpmodel.fbpmodel
        name = name[: -len(EXTENSION)]
    if not _NAME.match(name):
        raise FbpError(
            f"The model name {name!r} cannot be used as a file name; use letters, digits, '_', "
            "'-' and '.' only."
        )
    root = _folder(folder)
    dst = root / (name + EXTENSION)
    if dst.exists() and not overwrite:
        raise FbpError(
            f"A model named {name!r} already exists in {root}; choose another name or allow overwriting."
        )
    root.mkdir(parents=True, exist_ok=True)
    kind = sniff(src)
    if kind in ("torch-zip", "torch-pickle"):
        import_authors_checkpoint(src, dst)
        _drop_companions(dst)  # an imported authors' file has none; an old model's would mislead
    elif src.resolve() != dst.resolve():
        read_card(src)  # raises a clear FbpError for anything that is not one of our models
        with AtomicFiles() as files:  # the model and what belongs to it (its source memory) appear together
            shutil.copyfile(src, files.temp_for(dst))
            for suffix in COMPANIONS:
                if companion(src, suffix).is_file():
                    shutil.copyfile(companion(src, suffix), files.temp_for(companion(dst, suffix)))
        _drop_companions(dst, keep=[s for s in COMPANIONS if companion(src, s).is_file()])
    else:
        read_card(src)
    return dst


def _drop_companions(model: Path, keep: list[str] | tuple[str, ...] = ()) -> None:
    """Remove companions of a replaced model that the new one does not bring (they belonged to the old)."""
    for suffix in COMPANIONS:
        if suffix not in keep:
            companion(model, suffix).unlink(missing_ok=True)


def resolve(spec: str | os.PathLike, folder: str | os.PathLike | None = None) -> Path:
    """The file for a model spec: an existing file path, or the name of a model in the folder."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    text = str(spec)
    looks_like_path = os.sep in text or "/" in text or text.lower().endswith(
        (EXTENSION, ".pth", ".tar", ".pt", ".safetensors")
    )
    root = _folder(folder)
    candidate = root / (text + EXTENSION)
    if not looks_like_path and candidate.is_file():
        return candidate
    models = list_models(root)
    if not looks_like_path:
        for name, _card, found in models:
            if name.lower() == text.lower():
                return found
    known = ", ".join(name for name, _c, _p in models) or "none"
    if looks_like_path:
        raise FbpError(
            f"The model file {text} does not exist; check the path (models registered in {root}: {known})."
        )
    raise FbpError(
        f"There is no model named {text!r} in {root} (known models: {known}); "
        "give a checkpoint file or add one."
    )
