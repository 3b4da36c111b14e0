"""Is the engine usable inside this QGIS? One sentence when it is not, and a diagnostics text for bug reports.

Importing torch takes seconds, so nothing here runs at QGIS start: the dock and the algorithms call
``engine_problem()`` when they are about to need the engine.
"""

from __future__ import annotations

import platform
import sys
from functools import lru_cache
from pathlib import Path

PLUGIN_FOLDER = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def engine_problem() -> str | None:
    """The sentence saying why the engine cannot run here (torch or segmentation-models-pytorch does not
    load), or None when it can (cached per session)."""
    try:
        from ..engine.torch_import import import_smp, import_torch

        import_torch()
    except Exception as exc:  # ImportError, OSError from a broken DLL, RuntimeError...
        return _sentence("PyTorch (torch)", exc)
    try:
        import_smp()
    except Exception as exc:  # whatever the reason: it is reported
        return _sentence("segmentation-models-pytorch", exc)
    return None


@lru_cache(maxsize=1)
def qgis_python() -> str:
    """QGIS's real Python interpreter, in words (the installer's search; never raises)."""
    try:
        from .installer.interpreter import find

        found = find()
        return f"{found.path} (Python {found.version})"
    except Exception:  # noqa: BLE001
        return f"{sys.executable} (Python {platform.python_version()}; the real interpreter was not found)"


def _sentence(package: str, exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    try:
        from .engine_folder import engine_folder

        folder = engine_folder()
        where, installed = folder.site, folder.installed()
    except Exception:  # noqa: BLE001 (no QGIS application: a plain Python)
        where, installed = None, False
    if installed:
        return (f"The FBP Land Cover engine installed in {where} does not load: {package} failed in QGIS's "
                f"Python "
                f"{qgis_python()} ({first}); use 'Repair the engine' in FBP Land Cover ▸ Diagnostics… (or "
                f"run "
                "fbplandcover:installengine again).")
    return (f"The FBP Land Cover engine is not installed for this QGIS yet: {package} cannot be loaded by "
            f"QGIS's "
            f"Python {qgis_python()} ({first}). Press 'Install the engine' in the FBP Land Cover panel (or "
            f"run "
            "'Install the engine', fbplandcover:installengine, from the Processing toolbox): it puts the "
            f"engine's packages into {where or 'the plugin folder of your QGIS profile'} and leaves QGIS's "
            f"own "
            f"packages as they are. (Plugin folder: {PLUGIN_FOLDER}; developers use scripts/setup.sh there.)")


def reset() -> None:
    """Forget the cached result (after an install, a repair or a removal)."""
    engine_problem.cache_clear()
    qgis_python.cache_clear()


def _version(module: str) -> str:
    try:
        mod = __import__(module)
        return str(getattr(mod, "__version__", "installed"))
    except Exception as exc:  # whatever the reason: it is reported
        return f"not available ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"


def device_line() -> str:
    """Which device 'auto' would use and why, in one line (never raises)."""
    if engine_problem():
        return "none: the engine cannot start (see above)"
    try:
        from ..engine.models.devices import cuda_device_name
        from ..engine.torch_import import import_torch

        gpu = cuda_device_name()
        if gpu:
            return f"CUDA GPU {gpu}: torch sees it, so 'auto' runs the model there"
        torch = import_torch()
        build = ", a CPU-only build" if torch.version.cuda is None else ""
        return (f"CPU: torch {torch.__version__}{build} sees no CUDA device; "
                "'auto' uses onnxruntime when the model exports to ONNX, else torch")
    except Exception as exc:  # whatever the reason: it is reported
        return f"unknown ({type(exc).__name__}: {exc})"


def engine_folder_line() -> str:
    """Where the installed engine is and what the install recorded, in one line (never raises)."""
    try:
        from .engine_folder import engine_folder

        folder = engine_folder()
    except Exception as exc:  # noqa: BLE001
        return f"unknown ({exc})"
    if not folder.installed():
        return f"{folder.site} (not installed; the engine's packages come from QGIS's own Python, if at all)"
    record = folder.record() or {}
    build = record.get("torch_build", "?")
    return (f"{folder.site} (installed {record.get('installed', '?')}, PyTorch {build} build, "
            f"{len(record.get('packages', []))} packages; log {folder.log})")


def diagnostics_text(models_dir: str | None = None) -> str:
    """A plain-text report (versions, device and why, model folder) to paste into a bug report."""
    lines = ["FBP Land Cover diagnostics"]
    try:
        from qgis.core import Qgis

        lines.append(f"QGIS: {Qgis.version()}")
    except Exception:  # whatever the reason: it is reported
        lines.append("QGIS: not running inside QGIS")
    lines.append(f"Python: {sys.version.split()[0]} ({sys.executable})")
    lines.append(f"Platform: {platform.platform()}")
    try:
        from osgeo import gdal

        lines.append(f"GDAL: {gdal.__version__}")
    except Exception as exc:  # whatever the reason: it is reported
        lines.append(f"GDAL: not available ({exc})")
    lines.append(f"numpy: {_version('numpy')}")
    lines.append(f"QGIS's Python interpreter (for pip): {qgis_python()}")
    lines.append(f"Engine folder: {engine_folder_line()}")
    problem = engine_problem()
    if problem:
        lines.append(f"Engine: NOT USABLE: {problem}")
    else:
        from ..engine.torch_import import import_torch

        torch = import_torch()
        built = torch.version.cuda or "none: CPU-only build"
        lines.append(f"torch: {torch.__version__} (built for CUDA {built})")
        cuda = torch.cuda.is_available()
        lines.append(f"CUDA available: {'yes, ' + torch.cuda.get_device_name(0) if cuda else 'no'}")
        lines.append(f"segmentation-models-pytorch: {_version('segmentation_models_pytorch')}")
        lines.append(f"onnxruntime: {_version('onnxruntime')}")
    lines.append(f"Device in use: {device_line()}")
    try:
        from ..engine import __version__ as engine_version

        lines.append(f"Engine version: {engine_version}")
    except Exception as exc:  # whatever the reason: it is reported
        lines.append(f"Engine version: unknown ({exc})")
    lines.append(f"Model folder: {models_dir or '(not set)'}")
    if models_dir:
        try:
            from .models_folder import model_entries

            entries = model_entries(models_dir)
            lines.append(f"Registered models: {', '.join(e.name for e in entries) or 'none'}")
        except Exception as exc:  # whatever the reason: it is reported
            lines.append(f"Registered models: could not be listed ({exc})")
    return "\n".join(lines)
