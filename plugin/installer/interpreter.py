"""The real Python interpreter of the running QGIS.

Inside QGIS ``sys.executable`` is not always a Python: on Windows (OSGeo4W and the standalone installer)
and on macOS it is the QGIS program itself, and on Linux it is whatever ``python3`` came first on PATH
when QGIS started. pip must run with the interpreter whose library QGIS embeds, so candidates are built
from ``sys.base_exec_prefix`` and each is asked for its version, ABI and prefix before it is used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from . import InstallError

# What a candidate reports about itself (one JSON line).
_PROBE = (
    "import importlib.util, json, sys, sysconfig\n"
    "pip = importlib.util.find_spec('pip')\n"
    "version = None\n"
    "if pip is not None:\n"
    "    try:\n"
    "        import pip as _pip\n"
    "        version = _pip.__version__\n"
    "    except Exception:\n"
    "        pip = None\n"
    "print(json.dumps({'version': '%d.%d.%d' % sys.version_info[:3], 'base_prefix': sys.base_prefix,\n"
    "                  'ext_suffix': sysconfig.get_config_var('EXT_SUFFIX'), 'pip': version}))\n"
)


@dataclass(frozen=True)
class Running:
    """What the running QGIS's Python is (the defaults are this process)."""

    platform: str = sys.platform
    executable: str = sys.executable
    base_exec_prefix: str = sys.base_exec_prefix
    base_prefix: str = sys.base_prefix
    version: tuple[int, int, int] = tuple(sys.version_info[:3])  # type: ignore[assignment]
    ext_suffix: str | None = sysconfig.get_config_var("EXT_SUFFIX")


@dataclass(frozen=True)
class Interpreter:
    path: Path
    version: str
    how: str  # why this file: which rule found it
    pip: str | None  # the pip version, None when the interpreter has no pip

    def describe(self) -> str:
        return f"Python {self.version} at {self.path} ({self.how})"


def candidates(running: Running | None = None) -> list[tuple[Path, str]]:
    """Interpreter files to try, most likely first, each with the rule that named it."""
    running = running or Running()
    major, minor = running.version[:2]
    prefix = Path(running.base_exec_prefix)
    exe = Path(running.executable) if running.executable else None
    found: list[tuple[Path, str]] = []
    if running.platform == "win32":
        # OSGeo4W and the standalone installer: <QGIS>\apps\Python3XX\python.exe (sys.executable is
        # qgis-bin.exe).
        found += [(prefix / "python.exe", "python.exe in QGIS's Python folder (sys.base_exec_prefix)"),
                  (prefix / "python3.exe", "python3.exe in QGIS's Python folder")]
        if exe is not None:
            found.append((exe.parent / "python.exe", "python.exe beside the QGIS program"))
    elif running.platform == "darwin":
        # QGIS.app: Contents/MacOS/bin/python3 (sys.executable is the QGIS program in Contents/MacOS).
        found += [(prefix / "bin" / f"python{major}.{minor}", "the Python of QGIS's framework"),
                  (prefix / "bin" / "python3", "the Python of QGIS's framework")]
        if exe is not None:
            found.append((exe.parent / "bin" / "python3", "bin/python3 inside QGIS.app"))
    else:
        found += [(prefix / "bin" / f"python{major}.{minor}", "the system Python whose library QGIS embeds"),
                  (prefix / "bin" / "python3", "the system Python whose library QGIS embeds")]
        if exe is not None and exe.name.startswith("python"):
            found.append((exe, "sys.executable"))
        found.append((Path("/usr/bin/python3"), "/usr/bin/python3"))
    unique: list[tuple[Path, str]] = []
    for path, how in found:
        if path not in [p for p, _ in unique]:
            unique.append((path, how))
    return unique


def creation_flags() -> int:
    """No console window for subprocesses started from QGIS on Windows."""
    return getattr(subprocess, "CREATE_NO_WINDOW", 0) if os.name == "nt" else 0


def probe(path: Path, env: dict[str, str] | None = None, timeout: float = 60.0) -> dict | None:
    """What the interpreter at ``path`` says about itself, or None when it does not run."""
    if not path.is_file():
        return None
    try:
        out = subprocess.run([str(path), "-c", _PROBE], capture_output=True, text=True, timeout=timeout,
                             env=env, creationflags=creation_flags())
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def find(override: str | None = None, running: Running | None = None,
         env: dict[str, str] | None = None) -> Interpreter:
    """The interpreter pip must use: same version and ABI as QGIS's Python, the same prefix preferred."""
    running = running or Running()
    want = "{}.{}".format(*running.version[:2])
    tried: list[str] = []
    matches: list[tuple[bool, Interpreter]] = []
    if override:
        todo = [(Path(override), "chosen in the installer settings")]
    else:
        todo = candidates(running)
    for path, how in todo:
        info = probe(path, env)
        if info is None:
            tried.append(f"{path} (does not exist or does not run)")
            continue
        same_version = info["version"].rsplit(".", 1)[0] == want
        same_abi = running.ext_suffix is None or info.get("ext_suffix") == running.ext_suffix
        if not (same_version and same_abi):
            tried.append(f"{path} (Python {info['version']}, not QGIS's {want})")
            continue
        same_prefix = _same_path(info.get("base_prefix", ""), running.base_prefix)
        found = Interpreter(path, info["version"], how, info.get("pip"))
        if override or same_prefix:
            return found
        matches.append((same_prefix, found))
        tried.append(f"{path} (Python {info['version']} from another installation, "
                     f"{info.get('base_prefix')})")
    if matches:
        return matches[0][1]
    if override:
        raise InstallError(
            f"The Python interpreter chosen in the installer settings, {override}, cannot be used: "
            f"{'; '.join(tried)}; clear the setting or choose QGIS's own Python {want}.")
    raise InstallError(
        f"QGIS's own Python {want} interpreter was not found (tried {'; '.join(tried)}); give its path in "
        "the installer's Python setting (on Windows: the python.exe in QGIS's apps\\Python3xx folder).")


def _same_path(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return a == b
