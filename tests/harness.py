"""What every test and benchmark that starts a real server needs: a free loopback port, and
the app started as `python -m app` and waited for until it is ready."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

__all__ = ["free_port", "running_app", "wait_until"]

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on at the moment (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.1) -> bool:
    """Polls `predicate` until it is true or `timeout` seconds have passed; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


@contextmanager
def running_app(
    env: dict[str, str],
    client: httpx.Client,
    prefix: Sequence[str] = (),
    log_path: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m app` with `env` over the environment, once `client` finds /readyz at 200;
    stopped with SIGINT on exit. `prefix` runs it through another command (another host's
    network namespace: tests/netns.py); its stderr (the log) goes to `log_path`, if given."""
    # A file, not a pipe: nobody reads the log while the app serves, and a full pipe would
    # block the app's next log line (a hung app under a long load).
    with open(log_path, "w+b") if log_path else tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [*prefix, sys.executable, "-m", "app"],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )

        def log_text() -> str:
            log.seek(0)
            return log.read().decode(errors="replace")[-4000:]

        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, log_text()
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "not ready within 60 s"
                time.sleep(0.05)
            yield process
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=20)
