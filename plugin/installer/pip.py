"""Running pip: its output parsed into stages, cancellation, and one sentence for each way it fails."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import InstallCancelled, InstallError
from .interpreter import creation_flags

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]

# Options every pip call gets: no prompts, no version check, no progress bars (the output is parsed).
COMMON = ["--disable-pip-version-check", "--no-input", "--progress-bar", "off"]

_COLLECTING = re.compile(r"^\s*(Collecting|Processing|Obtaining)\s+(\S+)")
_DOWNLOADING = re.compile(r"^\s*Downloading\s+(\S+)(?:\s+\(([^)]+)\))?")
_CACHED = re.compile(r"^\s*Using cached\s+(\S+)")
_INSTALLING = re.compile(r"^\s*Installing collected packages:\s*(.+)$")


def _package(text: str) -> str:
    """'torch==2.13.0+cpu', '…/torch-2.13.0+cpu-cp311-….whl' or a URL -> 'torch'."""
    name = text.rstrip("/").rsplit("/", 1)[-1]
    for sep in ("==", ">=", "<=", "~=", "!=", "<", ">", "["):
        name = name.split(sep, 1)[0]
    if name.endswith((".whl", ".tar.gz", ".zip")):
        name = name.split("-", 1)[0]
    return name


@dataclass
class PipStages:
    """Turns pip's lines into (fraction of this step, message); ``total`` packages are expected."""

    total: int = 0
    collected: list[str] = field(default_factory=list)
    installing: bool = False

    def feed(self, line: str) -> tuple[float, str] | None:
        n = max(self.total, 1)
        if m := _INSTALLING.match(line):
            self.installing = True
            return 0.8, f"Installing {len(m.group(1).split(','))} packages (unpacking, the longest step)"
        if m := _DOWNLOADING.match(line):
            size = f" ({m.group(2)})" if m.group(2) else ""
            return min(0.8, 0.8 * len(self.collected) / n), (
                f"Downloading {_package(m.group(1))}{size} — package {len(self.collected)} of {n}")
        if m := _CACHED.match(line):
            return min(0.8, 0.8 * len(self.collected) / n), f"Using the cached {_package(m.group(1))}"
        if m := _COLLECTING.match(line):
            self.collected.append(_package(m.group(2)))
            return min(0.8, 0.8 * (len(self.collected) - 1) / n), (
                f"Getting {self.collected[-1]} — package {len(self.collected)} of {n}")
        if line.startswith("Successfully installed"):
            return 1.0, "Packages installed"
        return None


@dataclass
class PipRun:
    returncode: int
    lines: list[str]


def run(argv: list[str], env: dict[str, str], log: Callable[[str], None], on_line: Callable[[str], None],
        is_cancelled: CancelFn, timeout: float | None = None,
        on_tick: Callable[[], None] | None = None) -> PipRun:
    """Run pip, passing each output line to ``on_line`` and ``log``, and calling ``on_tick`` about once a
    second while pip is silent (a long download or the unpacking); cancel kills it (InstallCancelled)."""
    log("$ " + " ".join(argv))
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, text=True, encoding="utf-8",
                                errors="replace", bufsize=1, creationflags=creation_flags())
    except OSError as exc:
        raise InstallError(f"pip could not be started with {argv[0]} ({exc.strerror or exc}); check the "
                           "installer's Python setting.") from exc
    lines: queue.Queue[str | None] = queue.Queue()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\r\n"))
        lines.put(None)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    seen: list[str] = []
    started = last_tick = time.monotonic()
    try:
        while True:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                line = ""
            if line is None:
                break
            if line:
                seen.append(line)
                log(line)
                on_line(line)
            elif on_tick is not None and time.monotonic() - last_tick >= 1.0:
                last_tick = time.monotonic()
                on_tick()
            if is_cancelled():
                raise InstallCancelled()
            if timeout is not None and time.monotonic() - started > timeout:
                raise InstallError(f"pip did not finish within {timeout:.0f} s; see the log.")
        proc.wait()
    except BaseException:
        _stop(proc)
        raise
    finally:
        thread.join(timeout=5)
    log(f"(pip exited with code {proc.returncode})")
    return PipRun(proc.returncode, seen)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def index_urls(index_args: list[str]) -> list[str]:
    """The index URLs in pip's index options (none for a wheel folder)."""
    options = ("--index-url", "--extra-index-url")
    return [index_args[i + 1] for i, arg in enumerate(index_args[:-1]) if arg in options]


def unreachable(urls: list[str], timeout: float = 5.0) -> list[str]:
    """'URL (reason)' for each index that does not answer at all (an HTTP error is an answer)."""
    import urllib.error
    import urllib.request

    out = []
    for url in urls:
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
        except urllib.error.HTTPError:
            continue
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            out.append(f"{url} ({getattr(reason, 'strerror', None) or reason})")
    return out


def failure(run_: PipRun, target: Path, index: str, log_path: Path,
            urls: list[str] | None = None) -> InstallError:
    """The sentence for a failed pip run (what happened and what to do). ``urls``: the indexes pip used; when
    pip found nothing, they are checked, since pip says nothing of an index it could not reach."""
    text = "\n".join(run_.lines)
    low = text.lower()
    see = f" The full log is {log_path}."
    if urls and "(from versions: none)" in low:
        down = unreachable(urls)
        if down:
            return InstallError(f"The package index could not be reached: {'; '.join(down)}; check the "
                                f"network or "
                                "the proxy, set a reachable mirror in the installer settings, or give a "
                                "folder of "
                                "wheel files." + see)
    if "no space left on device" in low or "errno 28" in low:
        return InstallError(f"The disk holding {target} is full: {free_mb(target)} MB free; free some space "
                            "(the CPU engine needs about 2 GB while installing) and try again." + see)
    if any(s in low for s in ("failed to establish a new connection", "connection refused",
                              "temporary failure in name resolution", "name or service not known",
                              "network is unreachable", "could not fetch url", "read timed out",
                              "connecttimeouterror", "proxyerror", "max retries exceeded")):
        return InstallError(f"The package index ({index}) could not be reached; check the network or the "
                            f"proxy, "
                            "set a reachable mirror in the installer settings, or give a folder of wheel "
                            "files."
                            + see)
    if "resolutionimpossible" in low or "conflicting dependencies" in low or "cannot install" in low:
        detail = [line.strip() for line in run_.lines if "requires" in line or "depends on" in line
                  or "The user requested" in line][:4]
        return InstallError("The engine's packages conflict with a package of this QGIS that must stay as it "
                            "is ("
                            + ("; ".join(detail) or "see the log") + "); update QGIS, or report it." + see)
    if "no matching distribution found" in low or "could not find a version that satisfies" in low:
        missing = [line.split("for", 1)[-1].strip() for line in run_.lines
                   if "No matching distribution found" in line][:3]
        what = ", ".join(missing) or "a package"
        return InstallError(f"The package index ({index}) has no release of {what} "
                            "for this QGIS's Python and system; check the index setting (a wheel folder must "
                            "hold every package)." + see)
    if "permission denied" in low or "errno 13" in low:
        return InstallError(f"No permission to write into {target}; check the folder's permissions." + see)
    if "no module named pip" in low:
        return InstallError("QGIS's Python has no pip." + see)
    last = next((line for line in reversed(run_.lines) if line.strip().startswith("ERROR")), None)
    return InstallError(f"pip failed (exit code {run_.returncode}): {last or 'see the log'}." + see)


def free_mb(path: Path) -> int:
    """Free space on the disk holding ``path`` (or its nearest existing parent), in MB."""
    import shutil

    here = Path(path)
    while not here.exists() and here != here.parent:
        here = here.parent
    return int(shutil.disk_usage(here).free / 2**20)


def subprocess_env(exclude: Path | None = None, platform: str | None = None,
                   qgis_path: list[str] | None = None) -> dict[str, str]:
    """The environment for pip: QGIS's own (proxy, certificates, pip settings), UTF-8 output, and PYTHONPATH
    set to this QGIS's ``sys.path`` (``qgis_path``, default the running one) less our own folder, so that pip
    sees exactly the packages QGIS can import; on Windows QGIS's bin folder on PATH (its DLLs live there)."""
    import sys

    platform = platform or sys.platform
    env = dict(os.environ)
    env["PYTHONIOENCODING"] = "utf-8"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    entries = list(sys.path if qgis_path is None else qgis_path) + env.get("PYTHONPATH", "").split(os.pathsep)
    keep: list[str] = []
    for entry in entries:
        if not entry or not Path(entry).is_dir():
            continue
        resolved = Path(entry).resolve()
        if exclude is not None and (resolved == exclude.resolve() or exclude.resolve() in resolved.parents):
            continue
        if str(resolved) not in keep:
            keep.append(str(resolved))
    env["PYTHONPATH"] = os.pathsep.join(keep)
    if platform == "win32":
        qgis_bin = Path(sys.base_exec_prefix).parents[1] / "bin"
        if qgis_bin.is_dir():
            env["PATH"] = str(qgis_bin) + os.pathsep + env.get("PATH", "")
    return env
