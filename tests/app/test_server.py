"""`python -m app` serves on a loopback port or a unix socket, configured from APP_* variables."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.app.toy import TOY, publish_toy
from tests.conftest import PROJECT_ROOT
from tests.harness import free_port

pytestmark = pytest.mark.slow


@contextmanager
def running_app(env: dict[str, str], client: httpx.Client) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "app"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
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


def test_serves_on_a_loopback_port(tmp_path: Path) -> None:
    publish_toy(tmp_path, seed=1)
    port = free_port()
    env = {"APP_MODELS_DIR": str(tmp_path), "APP_MODELS": TOY, "APP_PORT": str(port)}
    with (
        httpx.Client(base_url=f"http://127.0.0.1:{port}") as client,
        running_app(env, client) as process,
    ):
        answer = client.get(f"/v1/models/{TOY}", headers={"X-Request-Id": "e2e-1"})
        assert answer.status_code == 200
        assert answer.headers["x-request-id"] == "e2e-1"
        assert answer.json()["version"] == 1
    assert process.returncode == 0
    assert b'"request_id": "e2e-1"' in (process.stderr.read() if process.stderr else b"")


def test_serves_on_a_unix_socket(tmp_path: Path) -> None:
    publish_toy(tmp_path / "models", seed=1)
    uds = tmp_path / "app.sock"
    env = {"APP_MODELS_DIR": str(tmp_path / "models"), "APP_MODELS": TOY, "APP_UDS": str(uds)}
    transport = httpx.HTTPTransport(uds=str(uds))
    with (
        httpx.Client(transport=transport, base_url="http://app") as client,
        running_app(env, client),
    ):
        assert client.get("/healthz").json() == {"status": "ok"}
        assert uds.exists()
