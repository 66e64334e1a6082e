"""Fixtures that start the real auth service (uvicorn subprocess, SQLite file in a temp dir)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .support import AuthServer, Credentials, create_client

BOOTSTRAP_SECRET = "bootstrap-secret-for-tests-0123456789"

ServerFactory = Callable[..., AuthServer]


@dataclass(frozen=True)
class Deployment:
    """A running service with clients of every kind, shared by the tests of one module."""

    server: AuthServer
    http: httpx.Client
    reader: Credentials  # scopes detect, classify
    other: Credentials  # scope detect
    admin: Credentials  # may introspect, no scopes
    bootstrap: Credentials  # from AUTH_BOOTSTRAP_*, all gateway scopes


BACKENDS = ("sqlite", "postgresql")


def new_store(backend: str, directory: Path, request: pytest.FixtureRequest) -> Path | str:
    """An empty store of the backend: a SQLite path, or a new database on the session's
    PostgreSQL cluster (tests/postgres.py; skipped without one, except in CI)."""
    if backend == "sqlite":
        return directory / "auth.sqlite3"
    return request.getfixturevalue("postgres").create_database()


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """An empty store on each backend in turn: the tests that take it run on both."""
    return new_store(request.param, tmp_path, request)


def _start_server(
    directory: Path, settings: dict[str, str], database: Path | str | None
) -> AuthServer:
    directory.mkdir(parents=True, exist_ok=True)
    return AuthServer(
        database=database or directory / "auth.sqlite3",
        log_path=directory / "server.log",
        settings=settings,
    ).start()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """start_server(database=None, **AUTH_settings) -> a running AuthServer, stopped afterwards."""
    servers: list[AuthServer] = []

    def start(database: Path | str | None = None, **settings: str) -> AuthServer:
        server = _start_server(tmp_path / f"server{len(servers)}", settings, database)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """Runs each test that takes it on both backends."""
    directory = tmp_path_factory.mktemp("auth")
    database = new_store(request.param, directory, request)
    reader = create_client(database, "reader", "detect,classify")
    other = create_client(database, "other", "detect")
    admin = create_client(database, "admin", introspect=True)
    settings = {
        "AUTH_BOOTSTRAP_CLIENT_ID": "bootstrap",
        "AUTH_BOOTSTRAP_CLIENT_SECRET": BOOTSTRAP_SECRET,
        # Tests of wrong secrets share these clients; throttling has its own tests and server.
        "AUTH_MAX_AUTH_FAILURES": "1000",
        "AUTH_MAX_SOURCE_AUTH_FAILURES": "1000",
        "AUTH_MAX_CLIENT_AUTH_FAILURES": "1000",
    }
    server = _start_server(directory, settings, database)
    with server.http() as http:
        yield Deployment(
            server, http, reader, other, admin, Credentials("bootstrap", BOOTSTRAP_SECRET)
        )
    server.stop()
