"""Durability, expiry, pruning, concurrency and disabling, each on its own server and store
(most of them on both backends: store_url)."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from pathlib import Path

import httpx

from .conftest import ServerFactory
from .support import (
    Credentials,
    check,
    create_client,
    introspect,
    run_cli,
    store_rows,
    token_count,
    token_for,
)

GRANT = {"grant_type": "client_credentials"}


def _clients(database: Path | str) -> tuple[Credentials, Credentials]:
    return (
        create_client(database, "svc", "detect,vae"),
        create_client(database, "inspector", introspect=True),
    )


def test_tokens_and_revocations_survive_a_restart(
    store_url: Path | str, start_server: ServerFactory
) -> None:
    database = store_url
    svc, inspector = _clients(database)
    server = start_server(database)
    with server.http() as http:
        kept = token_for(http, svc)
        revoked = token_for(http, svc)
        assert http.post("/oauth2/revoke", data={"token": revoked}, auth=svc.basic).is_success

    server.stop()
    assert "Application shutdown complete" in server.log_text()  # a clean stop, not a kill
    server.start()

    with server.http() as http:
        claims = introspect(http, inspector, kept).json()
        assert claims["active"] is True
        assert claims["client_id"] == "svc"
        assert introspect(http, inspector, revoked).json() == {"active": False}
        assert check(http, kept).status_code == 200
        assert check(http, revoked).status_code == 401


def test_the_database_uses_wal_and_is_migrated(tmp_path: Path, start_server: ServerFactory) -> None:
    database = tmp_path / "fresh" / "new.sqlite3"
    start_server(database)
    with sqlite3.connect(database) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"clients", "tokens"} <= tables


def test_tokens_expire_after_their_lifetime(
    store_url: Path | str, start_server: ServerFactory
) -> None:
    database = store_url
    svc, inspector = _clients(database)
    server = start_server(database, AUTH_TOKEN_TTL_SECONDS="1")
    with server.http() as http:
        response = http.post("/oauth2/token", data=GRANT, auth=svc.basic)
        assert response.json()["expires_in"] == 1
        token = response.json()["access_token"]
        assert check(http, token).status_code == 200

        time.sleep(2.2)  # exp is rounded up to a whole second, so the lifetime is 1-2 s

        expired = check(http, token)
        assert expired.status_code == 401
        assert expired.json()["detail"] == "the token has expired"
        assert introspect(http, inspector, token).json() == {"active": False}


def test_expired_tokens_are_pruned_on_start(
    store_url: Path | str, start_server: ServerFactory
) -> None:
    database = store_url
    svc, _ = _clients(database)
    server = start_server(database, AUTH_TOKEN_TTL_SECONDS="1")
    with server.http() as http:
        token_for(http, svc)
    server.stop()
    assert token_count(database) == 1

    time.sleep(2.2)
    server.start()

    assert token_count(database) == 0


def test_expired_tokens_are_pruned_periodically(
    store_url: Path | str, start_server: ServerFactory
) -> None:
    database = store_url
    svc, _ = _clients(database)
    server = start_server(database, AUTH_TOKEN_TTL_SECONDS="1", AUTH_PRUNE_INTERVAL_SECONDS="0.5")
    with server.http() as http:
        token_for(http, svc)
        deadline = time.monotonic() + 10
        remaining = 1
        while remaining and time.monotonic() < deadline:
            time.sleep(0.25)
            remaining = token_count(database)
    assert remaining == 0


def test_a_hundred_concurrent_token_requests_get_distinct_valid_tokens(
    store_url: Path | str, start_server: ServerFactory
) -> None:
    database = store_url
    svc, _ = _clients(database)
    server = start_server(database)

    async def issue_all() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(
            base_url=server.url, timeout=60, limits=limits, trust_env=False
        ) as http:
            requests = [http.post("/oauth2/token", data=GRANT, auth=svc.basic) for _ in range(100)]
            return await asyncio.gather(*requests)

    responses = asyncio.run(issue_all())

    assert [r.status_code for r in responses] == [200] * 100
    tokens = {r.json()["access_token"] for r in responses}
    assert len(tokens) == 100
    with server.http() as http:
        assert all(check(http, token, "vae").status_code == 200 for token in tokens)
    assert token_count(database) == 100


def test_a_disabled_clients_tokens_stop_working(
    store_url: Path | str, start_server: ServerFactory
) -> None:
    database = store_url
    svc, inspector = _clients(database)
    server = start_server(database)
    with server.http() as http:
        token = token_for(http, svc)
        assert check(http, token).status_code == 200

        run_cli(database, "clients", "disable", "svc")

        assert check(http, token).status_code == 401
        assert introspect(http, inspector, token).json() == {"active": False}
        refused = http.post("/oauth2/token", data=GRANT, auth=svc.basic)
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_client"


def test_a_disabled_client_stays_refused_even_if_its_tokens_were_not_revoked(
    store_url: Path | str, start_server: ServerFactory
) -> None:
    """The check also looks at the client, not only at the token's revoked mark."""
    database = store_url
    svc, _ = _clients(database)
    server = start_server(database)
    with server.http() as http:
        token = token_for(http, svc)
        store_rows(database, "UPDATE clients SET disabled = 1 WHERE client_id = 'svc'")
        response = check(http, token)
    assert response.status_code == 401
    assert response.json()["detail"] == "the token's client is disabled"


def test_bootstrap_is_idempotent_and_keeps_a_rotated_secret(
    tmp_path: Path, start_server: ServerFactory
) -> None:
    database = tmp_path / "bootstrap.sqlite3"
    settings = {
        "AUTH_BOOTSTRAP_CLIENT_ID": "compose",
        "AUTH_BOOTSTRAP_CLIENT_SECRET": "first-secret-0123456789",
        "AUTH_BOOTSTRAP_SCOPES": "detect,models:read",
    }
    server = start_server(database, **settings)
    with server.http() as http:
        assert token_for(http, Credentials("compose", "first-secret-0123456789"))
    server.stop()
    rotated = run_cli(database, "clients", "rotate-secret", "compose").stdout
    new_secret = rotated.split("client_secret: ")[1].strip()

    server.start()  # same bootstrap settings again

    with server.http() as http:
        old = http.post("/oauth2/token", data=GRANT, auth=("compose", "first-secret-0123456789"))
        assert old.status_code == 401
        response = http.post("/oauth2/token", data=GRANT, auth=("compose", new_secret))
        assert response.json()["scope"] == "detect models:read"
    listing = run_cli(database, "clients", "list", "--json").stdout.splitlines()
    assert len(listing) == 1


def test_the_service_can_listen_on_a_unix_socket(
    tmp_path: Path, start_server: ServerFactory
) -> None:
    database = tmp_path / "uds.sqlite3"
    svc, _ = _clients(database)
    socket_path = tmp_path / "auth.sock"
    server = start_server(database, AUTH_UNIX_SOCKET=str(socket_path))
    assert socket_path.is_socket()
    with server.http() as http:
        assert check(http, token_for(http, svc)).status_code == 200


def test_a_non_loopback_host_is_refused(tmp_path: Path) -> None:
    result = run_cli(tmp_path / "x.sqlite3", "serve", "--host", "0.0.0.0", check=False)
    assert result.returncode == 2
    assert "loopback" in result.stderr and "AUTH_ALLOW_NON_LOOPBACK" in result.stderr


def test_any_address_when_a_setting_says_so(tmp_path: Path, start_server: ServerFactory) -> None:
    """A pod listens on its own address (docs/auth.md "Listening"): with the explicit setting,
    0.0.0.0 serves, and so reaches loopback too."""
    database = tmp_path / "any.sqlite3"
    svc, _ = _clients(database)
    server = start_server(database, AUTH_HOST="0.0.0.0", AUTH_ALLOW_NON_LOOPBACK="true")
    with socket.socket() as probe:
        probe.connect(("127.0.0.1", server.port))
    listening = Path("/proc/net/tcp").read_text()
    assert f"00000000:{server.port:04X}" in listening  # bound to every address
    with server.http() as http:
        assert check(http, token_for(http, svc)).status_code == 200
