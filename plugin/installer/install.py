"""Install (or repair) and remove the engine's packages for the running QGIS.

Steps of an install, each with its share of the progress bar:
1. find QGIS's real Python and its pip;
2. resolve: ``pip install --dry-run --report`` with the requirements and the constraints of ``plan``, run
   by QGIS's own interpreter on QGIS's own ``sys.path``, sees the packages QGIS can already import and lists
   exactly those it lacks (or that must be newer, where ``plan`` allows it), with their versions;
3. install that list, at those exact versions, with ``pip install --target --no-deps`` into a hidden folder
   beside the final one (the list is complete, so pip resolves nothing again);
4. verify: a fresh interpreter imports the engine's packages from that folder, and numpy is still QGIS's;
5. rename it into place (``folder.commit``). A failure or a cancel at any step removes the hidden folder
   and leaves the previous state exactly as it was.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ...engine.progress import format_seconds
from . import InstallError
from .folder import RECORD, EngineFolder, commit, discard_new, first_missing, remove
from .interpreter import Interpreter, find
from .pip import COMMON, PipStages, failure, free_mb, index_urls, run, subprocess_env
from .plan import DISK_NEEDED_MB, PLUGIN_ROOT, Plan, Settings, make_plan, normalise

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]

# Sizes (MB) of the largest downloads, so that the progress bar moves with the bytes rather than the package
# count (torch is most of the download). A package not listed counts 1 MB; a local wheel counts its size.
_TYPICAL_MB = {"torch": 200, "onnxruntime": 15, "onnx": 16, "torchvision": 8, "sympy": 6, "timm": 3,
               "networkx": 2, "safetensors": 1, "onnxscript": 1, "ml-dtypes": 5, "protobuf": 1,
               "huggingface-hub": 1, "pillow": 4, "hf-xet": 3}
_TYPICAL_CUDA_MB = {"torch": 900, "nvidia-cudnn-cu12": 600, "nvidia-cublas-cu12": 400}

# "Requirement already satisfied: numpy==1.24.2 in /usr/lib/python3/dist-packages (from …) (1.24.2)"
_SATISFIED = re.compile(r"^Requirement already satisfied: ([A-Za-z0-9_.\-]+).*\(([^()]+)\)\s*$")

_VERIFY = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[2])
engine = __import__(sys.argv[3] + ".engine.torch_import", fromlist=["import_smp"])
torch = engine.import_torch()
smp = engine.import_smp()
import numpy, onnxruntime, safetensors, timm, tqdm
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda, "smp": smp.__version__,
                  "onnxruntime": onnxruntime.__version__, "numpy": numpy.__version__,
                  "numpy_file": numpy.__file__}))
"""


@dataclass
class Package:
    name: str
    version: str
    url: str = ""
    mb: float = 1.0

    def spec(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass
class InstallResult:
    folder: Path
    log: Path
    python: Interpreter
    installed: list[Package] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # QGIS's own packages the engine uses as they are
    outcome: str = "installed"
    verified: dict = field(default_factory=dict)
    seconds: float = 0.0


class _Log:
    """The install log: every command and every line pip printed, with times (written as it happens, so a
    crash still leaves it readable)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("w", encoding="utf-8")

    def __call__(self, line: str) -> None:
        self._file.write(f"{_dt.datetime.now().strftime('%H:%M:%S')} {line}\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _span(progress: ProgressFn, start: float, end: float) -> ProgressFn:
    return lambda fraction, message: progress(start + (end - start) * min(max(fraction, 0.0), 1.0), message)


def pip_command(python: Interpreter, wheel_folder: str | None) -> list[str]:
    """How to run pip with this interpreter: its own pip, else pip straight from a wheel in the wheel
    folder."""
    if python.pip:
        return [str(python.path), "-m", "pip"]
    wheels = sorted(Path(wheel_folder).glob("pip-*.whl")) if wheel_folder else []
    if wheels:
        return [str(python.path), str(wheels[-1] / "pip")]
    raise InstallError(
        f"QGIS's Python ({python.path}) has no pip. On Debian or Ubuntu install it with "
        "'sudo apt install python3-pip'; on Windows and macOS pip comes with QGIS, so repair or reinstall "
        "QGIS; "
        "or give a wheel folder that holds a pip wheel.")


def _packages_from_report(report: Path, typical: dict[str, int]) -> list[Package]:
    data = json.loads(report.read_text(encoding="utf-8"))
    out = []
    for item in data.get("install", []):
        meta = item.get("metadata", {})
        url = (item.get("download_info") or {}).get("url", "")
        pkg = Package(meta.get("name", ""), meta.get("version", ""), url)
        if url.startswith("file://"):
            try:
                from urllib.parse import unquote, urlparse

                pkg.mb = max(Path(unquote(urlparse(url).path)).stat().st_size / 2**20, 0.1)
            except OSError:
                pass
        else:
            pkg.mb = float(typical.get(normalise(pkg.name), 1))
        out.append(pkg)
    return out


def install(profile: str | Path, settings: Settings | None = None, progress: ProgressFn | None = None,
            is_cancelled: CancelFn | None = None) -> InstallResult:
    """Install the engine's packages into the profile's engine folder; see the module docstring."""
    settings = settings or Settings()
    progress = progress or (lambda _f, _m: None)
    is_cancelled = is_cancelled or (lambda: False)
    t0 = time.monotonic()
    folder = EngineFolder(Path(profile))
    created = first_missing(folder.base)  # removed again if this first install fails
    log = _Log(folder.log)
    meta = Path(tempfile.mkdtemp(prefix="fbp-engine-install-"))
    work: Path | None = None
    try:
        progress(0.0, "Finding QGIS's Python interpreter")
        env = subprocess_env(exclude=folder.base)
        python = find(settings.python, env=env)
        log(f"QGIS's Python: {python.describe()}; pip {python.pip or 'missing'}")
        pip = pip_command(python, settings.wheel_folder)
        need = DISK_NEEDED_MB[settings.torch_build]
        free = free_mb(folder.base)
        folder.base.mkdir(parents=True, exist_ok=True)
        if free < need:
            raise InstallError(f"The disk holding {folder.base} is too full: {free} MB free, about {need} MB "
                               "needed; free some space and try again.")
        plan = make_plan(settings, exclude=[folder.base])
        index = _index_words(settings)
        packages = _resolve(plan, pip, env, meta, log, _span(progress, 0.02, 0.15), is_cancelled, folder,
                            index)
        todo, kept = packages
        log(f"To install: {', '.join(p.spec() for p in todo)}")
        log(f"QGIS already has: {', '.join(kept) or 'none of them'}")
        if any(normalise(p.name) == "numpy" for p in todo):
            raise InstallError("pip wanted to install a second numpy beside QGIS's; this would break GDAL, "
                               "so "
                               "nothing was installed. Report it with the log " + str(folder.log) + ".")
        work = folder.work_dir()
        _install(todo, pip, plan, env, work, log, _span(progress, 0.15, 0.95), is_cancelled, folder, index)
        progress(0.95, "Checking that the engine's packages import (a fresh Python loads torch: seconds)")
        verified = _verify(python, env, work, log)
        record = {"installed": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                  "python": str(python.path), "python_version": python.version,
                  "torch_build": settings.torch_build, "index": index,
                  "packages": [p.spec() for p in todo], "kept_from_qgis": kept,
                  "pins": [f"{p.name}=={p.version}" for p in plan.pins], "verified": verified,
                  # what a later Remove may delete: made by this install, or by the one it repairs
                  "created_folder": str(created) if created
                  else (folder.record() or {}).get("created_folder")}
        (work / RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")
        if is_cancelled():
            from . import InstallCancelled

            raise InstallCancelled()
        outcome = commit(folder, work)
        work = None
        log(f"Engine folder {folder.site}: {outcome}")
        progress(1.0, f"Engine {outcome}")
        return InstallResult(folder.site, folder.log, python, todo, kept, outcome, verified,
                             time.monotonic() - t0)
    except InstallError as exc:
        log(f"FAILED: {exc}")
        raise
    except BaseException as exc:
        log(f"FAILED: {type(exc).__name__}: {exc}")
        raise
    finally:
        log.close()
        shutil.rmtree(meta, ignore_errors=True)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        discard_new(folder, created)


def _index_words(settings: Settings) -> str:
    if settings.wheel_folder:
        return f"the wheel folder {settings.wheel_folder}"
    return settings.index_url or "PyPI (or the index in pip's own configuration)"


def _resolve(plan: Plan, pip: list[str], env, meta: Path, log, progress, is_cancelled, folder, index):
    constraints = meta / "constraints.txt"
    constraints.write_text(plan.constraints_text(), encoding="utf-8")
    report = meta / "report.json"
    progress(0.0, "Working out which packages this QGIS needs (pip resolves them)")
    argv = [*pip, "install", "--dry-run", "--report", str(report), "-c", str(constraints),
            *COMMON, *plan.index_args, *plan.requirements]
    seen = [0]
    kept: list[str] = []

    def on_line(line: str) -> None:
        if m := _SATISFIED.match(line):
            kept.append(f"{m.group(1)} {m.group(2)}")
        if line.lstrip().startswith(("Collecting", "Downloading", "Processing", "Using cached")):
            seen[0] += 1
            progress(min(0.95, seen[0] / 40), f"Working out which packages this QGIS needs ({seen[0]} looked "
                                              f"at)")

    result = run(argv, env, log, on_line, is_cancelled)
    if result.returncode != 0 or not report.is_file():
        raise failure(result, folder.base, index, folder.log, index_urls(plan.index_args))
    typical = dict(_TYPICAL_MB, **(_TYPICAL_CUDA_MB if plan.torch_build == "cuda" else {}))
    return _packages_from_report(report, typical), sorted(set(kept))


# pip unpacks (and byte-compiles) wheels at about this rate on a 2-core machine (measured: 246 MB in 29 s).
UNPACK_MB_PER_S = 8.0
# Assumed download rate until the first package has come (MB/s); then the measured one.
FIRST_GUESS_MB_PER_S = 5.0


class _InstallClock:
    """One honest estimate for the pip install: the time left from the download measured so far and the
    typical unpacking rate; the fraction reported is elapsed / (elapsed + left), so a bar and its estimate
    never disagree, and the bar moves while pip is silent."""

    def __init__(self, total_mb: float) -> None:
        self.t0 = time.monotonic()
        self.total_mb = max(total_mb, 1.0)
        self.done_mb = 0.0
        self.unpack_started: float | None = None

    def left(self, now: float) -> float:
        unpack = self.total_mb / UNPACK_MB_PER_S
        if self.unpack_started is not None:
            return max(unpack - (now - self.unpack_started), 2.0)  # never "done" before pip says so
        took = now - self.t0
        rate = self.done_mb / took if self.done_mb > 0 and took > 0.5 else FIRST_GUESS_MB_PER_S
        return (self.total_mb - self.done_mb) / max(rate, 0.1) + unpack

    def fraction_and_eta(self) -> tuple[float, str]:
        now = time.monotonic()
        elapsed, left = now - self.t0, self.left(now)
        return elapsed / (elapsed + left), f" (about {format_seconds(left)} left)"


def _install(todo: list[Package], pip: list[str], plan: Plan, env, work: Path, log, progress, is_cancelled,
             folder, index) -> None:
    if not todo:
        progress(1.0, "QGIS already has every package the engine needs")
        return
    clock = _InstallClock(sum(p.mb for p in todo))
    stages = PipStages(total=len(todo))
    by_name = {normalise(p.name): p for p in todo}
    state: dict = {"current": None, "message": "Starting pip"}

    def report() -> None:
        fraction, eta = clock.fraction_and_eta()
        progress(fraction, state["message"] + eta)

    def on_line(line: str) -> None:
        step = stages.feed(line)
        if step is None:
            return
        _fraction, message = step
        if stages.installing and clock.unpack_started is None:
            clock.done_mb = clock.total_mb
            clock.unpack_started = time.monotonic()
        elif stages.collected and not stages.installing:
            pkg = by_name.get(normalise(stages.collected[-1]))
            if pkg is not state["current"]:
                if state["current"] is not None:
                    clock.done_mb += state["current"].mb
                state["current"] = pkg
            message += f", {clock.done_mb:.0f} of {clock.total_mb:.0f} MB"
        state["message"] = message
        report()

    argv = [*pip, "install", "--target", str(work), "--no-deps", "--no-warn-script-location", *COMMON,
            *plan.index_args, *[p.spec() for p in todo]]
    result = run(argv, env, log, on_line, is_cancelled, on_tick=report)
    if result.returncode != 0:
        raise failure(result, folder.base, index, folder.log, index_urls(plan.index_args))


def _verify(python: Interpreter, env, work: Path, log) -> dict:
    import subprocess

    from .interpreter import creation_flags

    argv = [str(python.path), "-c", _VERIFY, str(work), str(PLUGIN_ROOT.parent), PLUGIN_ROOT.name]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=env,
                             creationflags=creation_flags())
    except subprocess.TimeoutExpired as exc:
        raise InstallError("The installed packages did not import within 15 minutes; nothing was "
                           "changed.") from exc
    log("verify: " + out.stdout.strip() + (" " + out.stderr.strip()[-2000:] if out.returncode else ""))
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise InstallError(f"The packages were installed but the engine does not import ({last}); nothing "
                           f"was "
                           "changed. See the log " + str(log.path) + ".")
    verified = json.loads(out.stdout.strip().splitlines()[-1])
    if Path(verified["numpy_file"]).resolve().is_relative_to(work.resolve()):
        raise InstallError("The install brought a second numpy; nothing was changed. Report it with the log "
                           + str(log.path) + ".")
    return verified


def loaded_elsewhere(site: Path, installed: list[str]) -> list[str]:
    """Packages just installed into ``site`` that this process had already imported from another folder
    (a conflicting copy already in use: the new one takes effect after a restart)."""
    out = []
    for name in installed:
        module = sys.modules.get(normalise(name).replace("-", "_"))
        where = getattr(module, "__file__", None) if module is not None else None
        if where and not Path(where).resolve().is_relative_to(Path(site).resolve()):
            out.append(f"{name} ({Path(where).parent})")
    return out


def remove_engine(profile: str | Path) -> str:
    """Remove the engine folder from the profile; returns what happened, in words."""
    return remove(EngineFolder(Path(profile)))


def status(profile: str | Path) -> dict:
    """What is installed, for the diagnostics: folder, record, Python version."""
    folder = EngineFolder(Path(profile))
    return {"folder": str(folder.site), "installed": folder.installed(), "record": folder.record(),
            "pending_restart": folder.pending.exists(),
            "log": str(folder.log) if folder.log.exists() else None,
            "python": "{}.{}".format(*sys.version_info[:2])}
