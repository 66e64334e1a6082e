"""Failures on a stack of its own: expiry, auth service down or hanging, app killed, SIGTERM."""

from __future__ import annotations

import http.server
import os
import signal
import socketserver
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import running_stack
from tests.e2e.stack import Stack, is_listening, wait_until

pytestmark = pytest.mark.slow

TOKEN_TTL_SECONDS = 3


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(
        tmp_path_factory.mktemp("failures"), cache_seconds=2, token_ttl_seconds=TOKEN_TTL_SECONDS
    )


def _get(stack: Stack, token: str, path: str = "/v1/models") -> httpx.Response:
    request_id = uuid.uuid4().hex
    headers = {"Authorization": f"Bearer {token}", "X-Request-Id": request_id}
    return httpx.get(stack.url + path, headers=headers, timeout=15)


def _assert_auth_unavailable(stack: Stack, response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == {"error": "auth_unavailable"}
    assert response.headers["retry-after"] == "1"
    # Never a pass: the app did not see the request.
    request_id = response.headers["x-request-id"]
    assert stack.access_record(request_id)["upstream_status"] in ("", "-")
    assert not [line for line in stack.stderr().splitlines() if request_id in line]


def test_expired_token_is_refused(stack: Stack) -> None:
    token = stack.token("full", "models:read")
    assert _get(stack, token).status_code == 200
    time.sleep(TOKEN_TTL_SECONDS + 1 + stack.cache_seconds + 0.5)
    response = _get(stack, token)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_auth_service_hanging_is_503_never_a_pass(stack: Stack) -> None:
    cached = stack.token("full", "models:read")
    fresh = stack.token("full", "models:read")
    assert _get(stack, cached).status_code == 200
    auth_pid = stack.pid_of("auth")
    os.kill(auth_pid, signal.SIGSTOP)
    try:
        # Documented: an answer cached before the failure is served until the cache time ends.
        assert _get(stack, cached).status_code == 200
        started = time.monotonic()
        _assert_auth_unavailable(stack, _get(stack, fresh))
        assert time.monotonic() - started < 5  # the check times out after 2 s
        time.sleep(stack.cache_seconds + 0.5)
        _assert_auth_unavailable(stack, _get(stack, cached))
    finally:
        os.kill(auth_pid, signal.SIGCONT)
    assert wait_until(stack.is_ready, 10)
    assert _get(stack, stack.token("full", "models:read")).status_code == 200


def test_auth_service_stopped_is_503_never_a_pass(stack: Stack) -> None:
    token = stack.token("full", "models:read")
    assert "stopped" in stack.ctl("stop", "auth")
    try:
        _assert_auth_unavailable(stack, _get(stack, token))
        _assert_auth_unavailable(stack, _get(stack, "C" * 43))
        ready = httpx.get(f"{stack.url}/readyz")
        assert (ready.status_code, ready.json()) == (503, {"error": "auth_unavailable"})
        token_endpoint = httpx.post(f"{stack.url}/oauth2/token", data={})
        assert token_endpoint.status_code == 503
    finally:
        assert "started" in stack.ctl("start", "auth")
    assert wait_until(stack.is_ready, 10)
    assert _get(stack, stack.token("full", "models:read")).status_code == 200


class _FailingAuthHandler(http.server.BaseHTTPRequestHandler):
    """An auth service that has gone wrong: every answer is a 500."""

    def do_GET(self) -> None:
        body = b'{"error": "internal_error"}'
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def test_auth_service_failing_is_503_never_a_pass(stack: Stack) -> None:
    token = stack.token("full", "models:read")
    socket_path = stack.run_dir / "auth.sock"
    assert "stopped" in stack.ctl("stop", "auth")
    socket_path.unlink(missing_ok=True)
    server = _UnixHTTPServer(str(socket_path), _FailingAuthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _assert_auth_unavailable(stack, _get(stack, token))
        _assert_auth_unavailable(stack, _get(stack, "D" * 43, path="/classify"))
    finally:
        server.shutdown()
        server.server_close()
        socket_path.unlink(missing_ok=True)
        assert "started" in stack.ctl("start", "auth")
    assert wait_until(stack.is_ready, 10)
    assert _get(stack, stack.token("full", "models:read")).status_code == 200


def test_killed_app_is_restarted_within_2_seconds(stack: Stack) -> None:
    token = stack.token("full", "models:read")
    assert _get(stack, token).status_code == 200
    app_pid = stack.pid_of("app")
    os.kill(app_pid, signal.SIGKILL)  # leaves its unix socket behind
    killed = time.monotonic()
    down = _get(stack, token)
    assert down.status_code in (200, 503)
    if down.status_code == 503:
        assert down.json() == {"error": "upstream_unavailable"}
    assert wait_until(lambda: _get(stack, token).status_code == 200, 10, interval=0.05)
    assert time.monotonic() - killed < 2.0
    assert wait_until(lambda: "RUNNING" in stack.ctl("status", "app"), 5)
    assert stack.pid_of("app") != app_pid


def test_logs_of_every_program_reach_supervisord(stack: Stack) -> None:
    request_id = f"logs-{uuid.uuid4().hex}"
    token = stack.token("full", "classify")
    response = httpx.post(
        f"{stack.url}/classify",
        json={"text": "The central bank raised interest rates."},
        headers={"Authorization": f"Bearer {token}", "X-Request-Id": request_id},
    )
    assert response.status_code == 200
    # nginx: one JSON access line per request on stdout, with the check's identity.
    record = stack.access_record(request_id)
    assert (record["client_id"], record["status"], record["auth_cache"]) == ("full", 200, "MISS")
    # The app (JSON lines) and the auth service (uvicorn lines) log on stderr.
    assert stack.lines_with(request_id, '"path": "/classify"')
    assert stack.lines_with("Uvicorn running on unix socket", "auth.sock")
    assert stack.lines_with("Uvicorn running on unix socket", "app.sock")
    # nginx's error log (stderr): the refused connection of the killed-app test, if it ran.
    assert "supervisord started with pid" in stack.stdout()
    for program in ("auth", "app", "nginx"):
        assert f"success: {program} entered RUNNING state" in stack.stdout()


def test_sigterm_stops_everything(stack: Stack) -> None:
    """Last test of the module: the fixture's teardown then finds the stack already stopped."""
    sockets = [stack.run_dir / "app.sock", stack.run_dir / "auth.sock"]
    assert all(path.is_socket() for path in sockets)
    started = time.monotonic()
    assert stack.stop() == 0
    assert time.monotonic() - started < 8
    assert wait_until(stack.group_is_empty, 3)
    assert not is_listening(stack.port)
    assert not Path(stack.run_dir / "nginx" / "nginx.pid").exists()
    assert "nginx" in stack.stdout() and "stopped: nginx (exit status 0)" in stack.stdout()
