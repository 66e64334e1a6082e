"""Several app processes on one socket (`APP_WORKERS`): what they need beyond uvicorn's.

`python -m app` names a directory for Prometheus' multiprocess files before uvicorn spawns its
workers (they inherit it through the environment and read it at import), and each worker
asks the kernel to end it when the supervising process dies: uvicorn restarts workers that
die, but a supervisor killed outright (SIGKILL, the OOM killer) would otherwise leave them
running, holding memory and a socket that supervisord's next app no longer listens on.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

from app.metrics import MULTIPROCESS_ENV
from app.settings import Settings

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@contextlib.contextmanager
def metrics_dir(settings: Settings) -> Iterator[None]:
    """With several workers, a directory for their metrics, emptied first (a previous run's
    counters must not add up with this one's) and named in the environment."""
    if settings.workers == 1:
        yield
        return
    made = settings.metrics_dir is None
    path = Path(tempfile.mkdtemp(prefix="app-metrics-")) if made else settings.metrics_dir
    assert path is not None
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROCESS_ENV] = str(path)
    try:
        yield
    finally:
        if made:
            shutil.rmtree(path, ignore_errors=True)


def is_worker() -> bool:
    """True in a worker of a several-process server (the directory is set only then)."""
    return bool(os.environ.get(MULTIPROCESS_ENV))


def die_with_parent() -> None:
    """SIGTERM this process when its parent dies (Linux; elsewhere a no-op)."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
