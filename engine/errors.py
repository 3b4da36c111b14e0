"""The one exception type the engine raises for problems a user can fix.

Its message is a sentence for a GIS analyst: which file, what was expected, what was found, and what
to do. The CLI prints it without a traceback; the plugin turns it into a QgsProcessingException.
"""


class FbpError(Exception):
    """A problem with the user's input, files or settings, explained in one sentence."""


class CancelledError(FbpError):
    """The user cancelled; nothing half-written was left behind."""

    def __init__(self, message: str = "Cancelled by the user; no output was written.") -> None:
        super().__init__(message)


def explain(exc: BaseException) -> str | None:
    """The one sentence for an environment problem that is the user's to fix, not the program's bug: a full,
    read-only or forbidden disk, or a raster GDAL cannot read (truncated, damaged, a VRT's source missing).
    None for anything else (a real bug)."""
    import errno

    if isinstance(exc, OSError) and exc.errno is not None:
        where = exc.filename or "a file being written"
        if exc.errno == errno.ENOSPC:
            return (f"The disk holding {where} is full{_free(where)}; "
                    "free some space or choose another folder.")
        if exc.errno in (errno.EACCES, errno.EPERM):
            return f"Permission denied for {where}; choose a file or folder you can read and write."
        if exc.errno == errno.EROFS:
            return f"{where} is on a read-only disk; choose a folder on a disk that can be written."
    if isinstance(exc, RuntimeError) and raised_by_gdal(exc):
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "no detail"
        if "No space left" in text or "disk space" in text:
            return (f"The disk is full while writing a raster ({text}); "
                    "free some space or choose another folder.")
        return (f"GDAL could not read a raster ({text}); the file may be truncated or damaged, or a VRT's "
                "source file may be missing: copy it again or rebuild it.")
    return None


def raised_by_gdal(exc: BaseException) -> bool:
    """True when the error was raised inside GDAL's Python bindings."""
    tb = exc.__traceback__
    while tb is not None:
        if "osgeo" in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def _free(path) -> str:
    import os
    import shutil

    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    try:
        return f": {shutil.disk_usage(folder).free / 2**20:.0f} MB free"
    except OSError:
        return ""
