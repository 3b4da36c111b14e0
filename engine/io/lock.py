"""An exclusive lock on a job folder: one job writes there at a time, and a second one says who holds it.

The lock is ``.fbp-job.lock`` in the folder, locked with ``fcntl.flock`` while the job runs (on Windows,
``msvcrt.locking``), and holding the holder's pid, host and start time for the message. The kernel releases
the lock when the process ends in any way (SIGKILL included), so a lock left by a dead job is never in the
way: the next job takes it over and says so. The file itself stays (removing a lock file while others may
be opening it would let two jobs hold two different files).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from ..errors import FbpError

LOCK_NAME = ".fbp-job.lock"


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on ``fd`` without waiting; False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(text: str) -> dict:
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _describe(holder: dict) -> str:
    if not holder:
        return "another job (it has not written its name yet)"
    return (f"another job (process {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"started {holder.get('started', '?')})")


class FolderLock:
    """Hold the lock of ``folder`` from ``acquire`` (or ``with``) to ``release``; ``taken_over`` is the record
    of a dead job whose lock was taken over (else None)."""

    def __init__(self, folder: str | os.PathLike, what: str = "job folder") -> None:
        self.path = Path(folder) / LOCK_NAME
        self.what = what
        self.fd: int | None = None
        self.taken_over: dict | None = None

    def acquire(self) -> FolderLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            try:
                holder = _holder(self.path.read_text(encoding="utf-8", errors="replace"))
            except OSError:  # Windows refuses to read a locked region
                holder = {}
            os.close(fd)
            raise FbpError(f"The {self.what} {self.path.parent} is in use by {_describe(holder)}; wait for "
                           "it to finish, stop it, or choose another output folder.")
        previous = _holder(os.read(fd, 4096).decode("utf-8", "replace"))
        self.taken_over = previous or None
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(record).encode())
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        """Clear the record and let go (closing the file releases the lock)."""
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
