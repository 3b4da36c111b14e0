"""Scale-out on Dask: the per-scene task and the client (an existing cluster, a local one, or none).

Every scene is one task, ``run_scene(request)``, which calls ``map_landcover`` on the worker, so every
single-scene guarantee (atomic outputs, styling, nodata) holds there too. Workers write to the shared
output folder; only the client writes the manifest. A task whose worker dies is rescheduled by Dask on
another worker (``distributed.scheduler.allowed-failures``); other unexpected errors are retried
``RETRIES`` times; a problem with the input (``FbpError``) is not retried and comes back as a failure.
``device='auto'`` is resolved on each worker, so a worker with a CUDA GPU uses it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator

RETRIES = 2


def run_scene(request, progress=None, is_cancelled=None) -> dict:
    """Map one scene (a MapRequest); returns a summary. A problem with the scene (FbpError) comes back as
    ``{"ok": False, "error": ...}``; cancelling raises CancelledError."""
    from .. import mapping
    from ..errors import CancelledError, FbpError

    t0 = time.monotonic()
    where = f"{socket.gethostname()}:{os.getpid()}"
    try:
        res = mapping.map_landcover(request, progress, is_cancelled)
    except CancelledError:
        raise
    except FbpError as exc:
        return {"ok": False, "error": str(exc), "seconds": time.monotonic() - t0, "worker": where}
    return {"ok": True, "error": "", "seconds": time.monotonic() - t0, "worker": where,
            "width": res.width, "height": res.height, "device": f"{res.backend} on {res.device}",
            "sensor": res.sensor}


@contextlib.contextmanager
def open_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[object | None]:
    """A distributed.Client for ``scheduler`` (an address), or a LocalCluster of ``workers`` processes
    (one thread each) when workers > 1, or None (run in this process)."""
    if not scheduler and (workers is None or workers <= 1):
        yield None
        return
    from ..errors import FbpError

    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise FbpError("Running on several workers needs the Python packages dask and distributed, "
                       "which are not installed; install them "
                       "(pip install 'dask[distributed]') or run without --workers/--scheduler.") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise FbpError(f"Cannot connect to the Dask scheduler {scheduler} ({exc}); check the address "
                           "(tcp://host:8786) and that the scheduler is running.") from None
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
