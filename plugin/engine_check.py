"""Is the engine usable inside this QGIS? One sentence when it is not, and a diagnostics text for bug reports.

Importing torch takes seconds, so nothing here runs at QGIS start: the dock and the algorithms call
``engine_problem()`` when they are about to need the engine.
"""

from __future__ import annotations

import platform
import sys
from functools import lru_cache

SETUP_HINT = (
    "run scripts/setup.sh in the plugin's folder and start QGIS through .venv/bin/qgis "
    "(or .venv/bin/qgis_process) so that QGIS's Python sees the engine's packages"
)


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


def _sentence(package: str, exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (
        f"The FBP Land Cover engine cannot start because {package} could not be loaded by QGIS's Python "
        f"{sys.executable} ({first}); {SETUP_HINT}."
    )


def reset() -> None:
    """Forget the cached result (after the user fixed the environment)."""
    engine_problem.cache_clear()


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
    problem = engine_problem()
    if problem:
        lines.append(f"Engine: NOT USABLE: {problem}")
    else:
        from ..engine.torch_import import import_torch

        torch = import_torch()
        lines.append(f"torch: {torch.__version__} "
                     f"(built for CUDA {torch.version.cuda or 'none: CPU-only build'})")
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
