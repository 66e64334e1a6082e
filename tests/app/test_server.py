"""`python -m app` serves on a loopback port or a unix socket, configured from APP_* variables."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.app.toy import TOY, publish_toy
from tests.harness import free_port, running_app

pytestmark = pytest.mark.slow


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
