"""Helpers that run the real auth service and its CLI as subprocesses."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from auth_service.db import DatabaseTarget, open_database
from auth_service.main import create_app
from auth_service.settings import AuthSettings
from tests.harness import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0


def clean_environment(**extra: str) -> dict[str, str]:
    """The test process's environment without any AUTH_* setting, plus extra."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AUTH_")}
    env.update(extra)
    return env


@dataclass(frozen=True)
class Credentials:
    client_id: str
    secret: str

    @property
    def basic(self) -> tuple[str, str]:
        return (self.client_id, self.secret)


def database_setting(database: Path | str) -> dict[str, str]:
    """The variable that points the service at a store: a PostgreSQL URL or a SQLite file."""
    if "://" in str(database):
        return {"AUTH_DATABASE_URL": str(database)}
    return {"AUTH_DATABASE_PATH": str(database)}


def store_rows(database: Path | str, sql: str, parameters: tuple[object, ...] = ()) -> list[Any]:
    """Run one statement on a store of either backend, in its own transaction; its rows."""
    store = open_database(DatabaseTarget.parse(str(database)), 1).open()
    try:
        with store.write() as connection:
            cursor = connection.execute(sql, parameters)
            return cursor.fetchall() if sql.lstrip().upper().startswith("SELECT") else []
    finally:
        store.close()


def token_count(database: Path | str) -> int:
    return store_rows(database, "SELECT count(*) AS n FROM tokens")[0]["n"]


def run_cli(
    database: Path | str, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [PYTHON, "-m", "auth_service", "--database", str(database), *args],
        cwd=REPO_ROOT,
        env=clean_environment(),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"CLI {args} failed ({result.returncode}): {result.stderr}")
    return result


def secret_from_output(stdout: str) -> str:
    for line in stdout.splitlines():
        if line.startswith("client_secret: "):
            return line.removeprefix("client_secret: ")
    raise AssertionError(f"no client_secret line in {stdout!r}")


def create_client(
    database: Path | str, client_id: str, scopes: str = "", introspect: bool = False
) -> Credentials:
    args = ["clients", "create", "--id", client_id]
    if scopes:
        args += ["--scopes", scopes]
    if introspect:
        args.append("--introspect")
    return Credentials(client_id, secret_from_output(run_cli(database, *args).stdout))


@dataclass
class AuthServer:
    """``python -m auth_service serve`` on a free loopback port, logging to a file. The database
    is a SQLite file or a PostgreSQL URL."""

    database: Path | str
    log_path: Path
    settings: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return "http://auth" if self.unix_socket else f"http://127.0.0.1:{self.port}"

    @property
    def unix_socket(self) -> str | None:
        return self.settings.get("AUTH_UNIX_SOCKET")

    def http(self, timeout: float = 30) -> httpx.Client:
        transport = httpx.HTTPTransport(uds=self.unix_socket) if self.unix_socket else None
        return httpx.Client(
            base_url=self.url, timeout=timeout, transport=transport, trust_env=False
        )

    def start(self) -> AuthServer:
        for _ in range(3):  # another process may take the free port before the server binds it
            if self._try_start():
                return self
        raise AssertionError(f"auth service did not start:\n{self.log_text()}")

    def _try_start(self) -> bool:
        self.port = free_port()
        env = clean_environment(
            **database_setting(self.database), AUTH_PORT=str(self.port), **self.settings
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [PYTHON, "-m", "auth_service", "serve"],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with self.http(timeout=1) as http:
                    if http.get("/readyz").status_code == 200:
                        return True
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        return False

    def stop(self) -> int | None:
        """Stop the server the way supervisord does (SIGTERM) and return its exit code."""
        if self.process is None:
            return None
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def restart(self) -> AuthServer:
        self.stop()
        return self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def token_for(http: httpx.Client, credentials: Credentials, scope: str | None = None) -> str:
    data = {"grant_type": "client_credentials"}
    if scope is not None:
        data["scope"] = scope
    response = http.post("/oauth2/token", data=data, auth=credentials.basic)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def check(http: httpx.Client, token: str | None, scope: str | None = "detect") -> httpx.Response:
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if scope is not None:
        headers["X-Required-Scope"] = scope
    return http.get("/oauth2/check", headers=headers)


def introspect(http: httpx.Client, caller: Credentials, token: str) -> httpx.Response:
    return http.post("/oauth2/introspect", data={"token": token}, auth=caller.basic)


@contextlib.asynccontextmanager
async def in_process(
    settings: AuthSettings, app: FastAPI | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this process (lifespan run, real SQLite file), for tests that patch it."""
    app = app or create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth") as http:
            yield http
