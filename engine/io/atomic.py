"""The one way the project writes a file: it appears under its name only when it is complete.

Every file is first written to a temporary file beside its target, in the same folder (so the final rename
never crosses file systems), made with ``tempfile.mkstemp`` (never a name that is unlinked and reused) under
a hidden name that is ours and tied to its target: ``.<target name>.<random>.partial<target suffix>``, e.g.
``.landcover.tif.k2j4x8.partial.tif`` (the target's suffix stays last, for libraries that choose a format
by it). It is flushed to disk (fsync) and renamed over the target (``os.replace``, atomic on POSIX and
Windows), then the folder is flushed. GDAL keeps sidecars beside a raster (``.aux.xml`` with category names
and statistics, ``.ovr`` overviews): they travel with it, and a stale sidecar of the file being replaced is
removed. The outputs of one run form an ``AtomicFiles`` set: every file is flushed before the first rename,
and all are discarded when anything failed or was cancelled; a failure during the renames themselves puts
the old files back, so a set appears whole or not at all. ``partials_of(target)`` finds what a killed
run left of a target; ``remove_stale_partials`` clears them when a new run of that target starts.
``check_destination`` refuses one output before any work starts; ``check_outputs`` checks a run's whole
set (each path distinct, none an input even with overwrite, each with a suffix that fits what is written).
``move_folder`` is the same idea for a whole folder built beside its final place (the plugin's engine
installer).
"""

from __future__ import annotations

import errno
import glob
import os
import shutil
import tempfile
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import FbpError, raised_by_gdal

PARTIAL = ".partial"
SIDECARS = (".aux.xml", ".ovr")
FILE_MODE = 0o644  # mkstemp makes 0600; a finished output is an ordinary file
FULL_BYTES = 1 << 20  # a write that failed with less than this free on its disk failed because it is full


def partial_path(target: str | os.PathLike) -> Path:
    """A new, empty temporary file beside ``target`` (``.NAME.<random>.partial<suffix>``), created
    exclusively."""
    target = Path(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=PARTIAL + target.suffix, dir=target.parent)
    os.close(fd)
    return Path(name)


def partials_of(target: str | os.PathLike) -> list[Path]:
    """The temporary files (and their sidecars) a run that was killed left beside ``target``."""
    target = Path(target)
    pattern = f".{glob.escape(target.name)}.*{PARTIAL}{glob.escape(target.suffix)}*"
    return sorted(target.parent.glob(pattern))


def sidecars(path: str | os.PathLike) -> list[Path]:
    """The GDAL sidecar files of ``path`` (they may not exist)."""
    return [Path(str(path) + ext) for ext in SIDECARS]


def _fsync(path: Path, folder: bool = False) -> None:
    """Flush a file (or a folder's entries) to disk. Windows cannot open a folder for this; it is skipped."""
    if folder and os.name == "nt":
        return
    mode = os.O_RDWR if os.name == "nt" and not folder else os.O_RDONLY
    fd = os.open(path, mode | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicFiles:
    """Temporary files that replace their targets together on ``commit``, or are all removed on ``discard``.

    As a context manager: committed when the block succeeds, discarded when it raises (Ctrl-C included).
    ``closing(handle)`` registers something still writing into a temporary file (a GDAL writer): it is closed
    before a discard removes the files.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []
        self._handles: list = []

    def closing(self, handle):
        """Register ``handle`` (with a ``close()``) to be closed before a discard; returns it."""
        self._handles.append(handle)
        return handle

    def temp_for(self, target: str | os.PathLike) -> Path:
        """The temporary file to write instead of ``target`` (it exists, empty)."""
        target = Path(target)
        tmp = partial_path(target)
        self._pending.append((tmp, target))
        return tmp

    def write_text(self, target: str | os.PathLike, text: str) -> None:
        self.temp_for(target).write_text(text, encoding="utf-8")

    def commit(self) -> None:
        """Flush every temporary file, then put the whole set in place, or none of it.

        Each existing target (and each sidecar of one) is first moved aside under a partial name; then the new
        files are renamed in (sidecars first, each file last: it appears only when complete). When any step
        fails, what was renamed is taken back and the old files are restored before the error goes on; on
        success the old files are removed."""
        for tmp, _target in self._pending:
            for path in [*(s for s in sidecars(tmp) if s.exists()), tmp]:
                _fsync(path)
        moves: list[tuple[Path | None, Path]] = []  # (new file or None for a stale sidecar, its target)
        for tmp, target in self._pending:
            for side_tmp, side_target in zip(sidecars(tmp), sidecars(target), strict=True):
                moves.append((side_tmp if side_tmp.exists() else None, side_target))
            os.chmod(tmp, FILE_MODE)
            moves.append((tmp, target))
        aside: list[tuple[Path, Path]] = []  # (old file moved aside, where it was)
        placed: list[Path] = []
        try:
            for new, target in moves:
                if os.path.lexists(target):
                    old = partial_path(target)
                    try:
                        os.replace(target, old)
                    except BaseException:
                        old.unlink(missing_ok=True)
                        raise
                    aside.append((old, target))
                if new is not None:
                    os.replace(new, target)
                    placed.append(target)
        except BaseException:
            for target in reversed(placed):
                target.unlink(missing_ok=True)
            for old, target in reversed(aside):
                os.replace(old, target)
            self.discard()
            raise
        for old, _target in aside:
            old.unlink(missing_ok=True)
        folders = {target.parent for _tmp, target in self._pending}
        self._pending.clear()
        self._handles.clear()
        for folder in folders:
            _fsync(folder, folder=True)

    def discard(self) -> None:
        """Close what still writes into them, then remove every temporary file and its sidecars; the targets
        are left as they were."""
        for handle in self._handles:
            getattr(handle, "abandon", handle.close)()  # a writer of a failed set: dropped quietly
        self._handles.clear()
        for tmp, _target in self._pending:
            for path in [tmp, *sidecars(tmp)]:
                path.unlink(missing_ok=True)
        self._pending.clear()

    def __enter__(self) -> AtomicFiles:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
            return
        full = self.full_target() if isinstance(exc, RuntimeError) and raised_by_gdal(exc) else None
        self.discard()
        if full is not None:
            # GDAL reports a full disk in libtiff's words ("TIFFRewriteDirectory: Error fetching directory
            # count"): said as what it is
            _release_frames(exc)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(full)) from None

    def full_target(self) -> Path | None:
        """A target whose disk is full (under FULL_BYTES free) while the set is written, or None."""
        for _tmp, target in self._pending:
            try:
                if shutil.disk_usage(target.parent).free < FULL_BYTES:
                    return target
            except OSError:
                continue
        return None


def _release_frames(exc: BaseException) -> None:
    """Free what the failed call's finished frames hold (a GDAL dataset whose write failed) now and quietly:
    kept alive by the traceback, its failing flush on deletion would print "Exception ignored" noise after
    the sentence."""
    from .gdal import quiet_deletion

    with quiet_deletion():
        traceback.clear_frames(exc.__traceback__)
        exc.__traceback__ = None


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield the temporary path to write instead of ``target``; it replaces ``target`` when the block succeeds
    and is removed when it fails or is interrupted."""
    with AtomicFiles() as files:
        yield files.temp_for(target)


def write_text_atomic(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def check_destination(path: str | os.PathLike, overwrite: bool, what: str = "output", *,
                      make_folder: bool = False) -> Path:
    """Refuse an existing file (unless overwrite) or a folder that cannot be written, before any work.

    A missing folder is refused, or created with ``make_folder``. Returns the absolute path."""
    path = Path(path).expanduser().absolute()
    if path.exists() and not overwrite:
        raise FbpError(
            f"The {what} {path} already exists; choose another name or ask to overwrite it (--overwrite)."
        )
    if path.is_dir():
        raise FbpError(f"The {what} {path} is a folder; give a file name such as {path / 'landcover.tif'}.")
    folder = path.parent
    if make_folder:
        folder.mkdir(parents=True, exist_ok=True)
    if not folder.is_dir():
        raise FbpError(f"The folder for the {what}, {folder}, does not exist; "
                       "create it or choose another path.")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".fbp-write-test-"):
            pass
    except OSError as exc:
        raise FbpError(
            f"Cannot write the {what} into {folder} ({exc.strerror}); choose a folder you can write to."
        ) from exc
    return path


RASTER_SUFFIXES = (".tif", ".tiff")  # the GeoTIFFs the products write


def remove_stale_partials(target: str | os.PathLike) -> list[Path]:
    """Remove what an earlier, killed run left of ``target`` (its hidden partial files and their sidecars);
    returns what was removed."""
    removed = []
    for path in partials_of(target):
        try:
            path.unlink()
            removed.append(path)
        except FileNotFoundError:
            pass
    return removed


def remove_partials_in(folders: Iterable[str | os.PathLike]) -> list[Path]:
    """Remove every partial file in ``folders`` (not below them): for a folder only one job writes to at a
    time (a locked job folder), whatever is there was left by a job that was killed."""
    removed = []
    for folder in map(Path, folders):
        for path in sorted(folder.glob(f".*{PARTIAL}*")) if folder.is_dir() else []:
            if path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def _real(path: str | os.PathLike) -> str:
    return os.path.normcase(os.path.realpath(os.fspath(path)))


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` name one file: the same resolved path (links followed), or two names of one
    existing file (a hard link)."""
    if _real(a) == _real(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(outputs: Iterable[tuple[str, str | os.PathLike, tuple[str, ...] | None]],
                  inputs: Iterable[tuple[str, str | os.PathLike]] = (), overwrite: bool = False, *,
                  make_folder: bool = False, clean: bool = True) -> list[Path]:
    """Check the whole set of a run's outputs before any work; returns their absolute paths, in order.

    ``outputs`` are (what, path, allowed suffixes or None); ``inputs`` are (what, path). Refused, with one
    sentence: an output whose suffix does not fit what is written there, two outputs that are one file, an
    output that is one of the inputs (even with ``overwrite``: an input is never replaced), and everything
    ``check_destination`` refuses. Then (``clean``) the partial files a killed earlier run left of each output
    are removed."""
    outputs = [(what, Path(path).expanduser().absolute(), suffixes) for what, path, suffixes in outputs]
    inputs = [(what, Path(path).expanduser().absolute()) for what, path in inputs if path]
    for what, path, suffixes in outputs:
        if suffixes and path.suffix.lower() not in suffixes:
            raise FbpError(f"The {what} {path} must end in {' or '.join(suffixes)} (that is what is written "
                           f"there); choose a name such as {path.with_suffix(suffixes[0]).name}.")
    for i, (what, path, _s) in enumerate(outputs):
        for in_what, in_path in inputs:
            if same_file(path, in_path):
                raise FbpError(f"The {what} {path} is the {in_what} of this run; choose another output name "
                               "(an input is never overwritten, even with --overwrite).")
        for other, other_path, _o in outputs[:i]:
            if same_file(path, other_path):
                raise FbpError(f"The {other} and the {what} would both be written to {path}; "
                               "give each output its own file name.")
    checked = [check_destination(path, overwrite, what, make_folder=make_folder)
               for what, path, _s in outputs]
    if clean:
        for path in checked:
            remove_stale_partials(path)
    return checked


def move_folder(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Rename a complete folder to ``dst`` (which must not exist) in one step, on the same disk: a reader sees
    the old state or the new one, never a half-copied folder. Raises OSError when the folder is in use
    (Windows keeps loaded DLLs locked); the caller decides what to do then."""
    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise FileExistsError(f"{dst} exists")
    os.rename(src, dst)
