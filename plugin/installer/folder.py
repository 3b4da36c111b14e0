"""The engine's folder in the QGIS profile, and putting it on ``sys.path``.

``<profile>/python/dependencies/fbp_landcover/`` holds one folder per Python version (``py3.11/``: the
packages, as ``pip install --target`` lays them out, with ``fbp-engine-install.json`` saying what was
installed). The log of the latest install is ``<profile>/fbp_landcover/logs/engine-install.log``.
An install is built in a hidden ``.work-*`` folder
beside it and renamed into place only when complete and verified; a folder that cannot be replaced while
QGIS has it loaded (Windows) waits as ``pyX.Y.pending`` and is swapped in at the next start, before anything
imports from it. Nothing outside this folder is ever written.
"""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from ...engine.io.atomic import move_folder

RECORD = "fbp-engine-install.json"
REMOVE_MARK = ".remove-at-start"


@dataclass(frozen=True)
class EngineFolder:
    profile: Path
    version: tuple[int, int] = tuple(sys.version_info[:2])  # type: ignore[assignment]

    @property
    def base(self) -> Path:
        return Path(self.profile) / "python" / "dependencies" / "fbp_landcover"

    @property
    def site(self) -> Path:
        return self.base / f"py{self.version[0]}.{self.version[1]}"

    @property
    def pending(self) -> Path:
        return self.base / f"{self.site.name}.pending"

    @property
    def log(self) -> Path:
        return Path(self.profile) / "fbp_landcover" / "logs" / "engine-install.log"

    def work_dir(self) -> Path:
        """A fresh hidden folder for an install in progress (removed at the next start if left behind)."""
        path = self.base / f".work-{uuid.uuid4().hex[:12]}"
        path.mkdir(parents=True)
        return path

    def record(self) -> dict | None:
        """What the installed engine's install wrote about itself, or None when none is installed."""
        try:
            return json.loads((self.site / RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def installed(self) -> bool:
        return self.site.is_dir() and not (self.base / REMOVE_MARK).exists()


def _loaded_from(folder: Path) -> list[str]:
    """Modules this process has imported from ``folder`` (they keep files open on Windows)."""
    root = str(folder.resolve())
    out = []
    for name, mod in list(sys.modules.items()):
        path = getattr(mod, "__file__", None)
        if path and str(Path(path).resolve()).startswith(root) and "." not in name:
            out.append(name)
    return sorted(out)


def tidy(folder: EngineFolder) -> None:
    """At start, before anything is imported from the folder: finish a swap or removal that had to wait for
    a restart, and remove what an interrupted install left behind."""
    base = folder.base
    if not base.is_dir():
        return
    if (base / REMOVE_MARK).exists():
        shutil.rmtree(base, ignore_errors=True)
        return
    if folder.pending.is_dir():
        old = base / f".old-{uuid.uuid4().hex[:12]}"
        if folder.site.exists():
            move_folder(folder.site, old)
        move_folder(folder.pending, folder.site)
    for leftover in list(base.glob(".work-*")) + list(base.glob(".old-*")):
        shutil.rmtree(leftover, ignore_errors=True)


def activate(folder: EngineFolder) -> Path | None:
    """Put the installed engine folder first on ``sys.path`` (processing its .pth files); None if absent."""
    import importlib
    import site

    tidy(folder)
    if not folder.installed():
        return None
    path = str(folder.site)
    if path not in sys.path:
        site.addsitedir(path)  # appends it and whatever its .pth files name
        sys.path.remove(path)
        sys.path.insert(0, path)
        importlib.invalidate_caches()
    return folder.site


def deactivate(folder: EngineFolder) -> None:
    path = str(folder.site)
    while path in sys.path:
        sys.path.remove(path)


def commit(folder: EngineFolder, built: Path) -> str:
    """Put a complete, verified install in place of the current one; returns what happened, in words."""
    site = folder.site
    if site.exists():
        old = folder.base / f".old-{uuid.uuid4().hex[:12]}"
        try:
            move_folder(site, old)
        except OSError:  # Windows: QGIS has the current engine's DLLs open
            if folder.pending.exists():
                shutil.rmtree(folder.pending, ignore_errors=True)
            move_folder(built, folder.pending)
            return "installed; QGIS must be restarted to use it (the previous engine is in use until then)"
        move_folder(built, site)
        shutil.rmtree(old, ignore_errors=True)  # a locked file stays; the next start removes the rest
        return "replaced the previous engine"
    move_folder(built, site)
    return "installed"


def remove(folder: EngineFolder) -> str:
    """Remove the engine folder entirely (the profile is as before the install); returns what happened."""
    base = folder.base
    _remove_log(folder)
    if not base.exists():
        return "no engine was installed in this profile"
    loaded = _loaded_from(folder.site) if folder.site.exists() else []
    created = (folder.record() or {}).get("created_folder")
    deactivate(folder)
    shutil.rmtree(base, ignore_errors=True)
    if base.exists():  # Windows: files in use
        base.mkdir(parents=True, exist_ok=True)
        (base / REMOVE_MARK).write_text("removed by the user; deleted at the next start\n", encoding="utf-8")
        return "removed; the rest is deleted when QGIS restarts (files in use)"
    if created:
        _drop_empty_parents(base, Path(created))
    if loaded:
        return (f"removed; this QGIS session still has {', '.join(loaded[:4])} loaded until it is restarted")
    return "removed"


def _remove_log(folder: EngineFolder) -> None:
    folder.log.unlink(missing_ok=True)
    try:
        folder.log.parent.rmdir()  # the logs folder, if nothing else is in it
    except OSError:
        pass


def first_missing(path: Path) -> Path | None:
    """The topmost folder of ``path`` that does not exist yet (what creating it would create), or None."""
    missing = None
    here = Path(path)
    while not here.exists() and here != here.parent:
        missing = here
        here = here.parent
    return missing


def discard_new(folder: EngineFolder, created: Path | None) -> None:
    """After a failed or cancelled first install: remove the folders it created (the log stays)."""
    if folder.base.is_dir() and not folder.site.exists() and not folder.pending.exists():
        shutil.rmtree(folder.base, ignore_errors=True)
        if created is not None:
            _drop_empty_parents(folder.base, created)


def _drop_empty_parents(base: Path, created: Path) -> None:
    """Remove the empty folders above ``base`` up to ``created``, the topmost one the install made."""
    here = base.parent
    created = Path(created)
    while here == created or created in here.parents:
        try:
            here.rmdir()
        except OSError:
            return
        here = here.parent
