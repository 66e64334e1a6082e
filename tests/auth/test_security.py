"""Secrets at rest, secrets in logs, and throttling of repeated failed client authentication."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

from .conftest import ServerFactory
from .support import check, create_client, introspect, token_for

GRANT = {"grant_type": "client_credentials"}


def _database_bytes(database: Path) -> bytes:
    files = [database, database.with_name(database.name + "-wal")]
    return b"".join(path.read_bytes() for path in files if path.exists())


def test_only_hashes_of_secrets_and_tokens_are_stored(
    tmp_path: Path, start_server: ServerFactory
) -> None:
    database = tmp_path / "at-rest.sqlite3"
    svc = create_client(database, "svc", "detect")
    server = start_server(database)
    with server.http() as http:
        token = token_for(http, svc)

    with sqlite3.connect(database) as conn:
        secret_hash = conn.execute("SELECT secret_hash FROM clients").fetchone()[0]
        token_hash = conn.execute("SELECT token_hash FROM tokens").fetchone()[0]
    assert secret_hash.startswith("scrypt$n=16384,r=8,p=1$")
    assert token_hash == hashlib.sha256(token.encode()).digest()
    stored = _database_bytes(database)
    assert svc.secret.encode() not in stored
    assert token.encode() not in stored


def test_no_secret_or_token_reaches_the_log(tmp_path: Path, start_server: ServerFactory) -> None:
    database = tmp_path / "logs.sqlite3"
    svc = create_client(database, "svc", "detect")
    inspector = create_client(database, "inspector", introspect=True)
    server = start_server(database, AUTH_ACCESS_LOG="true", AUTH_LOG_LEVEL="debug")
    with server.http() as http:
        token = token_for(http, svc)
        introspect(http, inspector, token)
        check(http, token)
        http.get(f"/oauth2/check?access_token={token}")
        http.post(f"/oauth2/token?client_secret={svc.secret}", data=GRANT, auth=svc.basic)
        # A confused client sending its secret as its id must not have it logged either.
        http.post("/oauth2/token", data=GRANT, auth=(svc.secret, svc.secret))
        http.post("/oauth2/token", data=GRANT, auth=("svc", "wrong-" + svc.secret))
        http.post("/oauth2/revoke", data={"token": token}, auth=svc.basic)
    server.stop()

    log = server.log_text()
    assert "token issued client_id=svc" in log  # the log is really being written
    assert '"GET /oauth2/check?[redacted] HTTP/1.1" 401' in log
    assert "client authentication failed client_id=<unknown>" in log
    assert svc.secret not in log
    assert inspector.secret not in log
    assert token not in log


def test_repeated_failures_for_one_client_id_are_refused_with_429(
    tmp_path: Path, start_server: ServerFactory
) -> None:
    database = tmp_path / "throttle.sqlite3"
    svc = create_client(database, "svc", "detect")
    neighbour = create_client(database, "neighbour", "detect")
    server = start_server(
        database, AUTH_MAX_AUTH_FAILURES="3", AUTH_AUTH_FAILURE_WINDOW_SECONDS="3"
    )
    with server.http() as http:
        failures = [
            http.post("/oauth2/token", data=GRANT, auth=("svc", "wrong")).status_code
            for _ in range(3)
        ]
        assert failures == [401, 401, 401]

        refused = http.post("/oauth2/token", data=GRANT, auth=svc.basic)  # even the right secret
        assert refused.status_code == 429
        assert refused.json()["error"] == "invalid_client"
        assert 1 <= int(refused.headers["retry-after"]) <= 3
        assert (
            http.post("/oauth2/introspect", data={"token": "x"}, auth=svc.basic).status_code == 429
        )
        # Another client id is not affected.
        assert http.post("/oauth2/token", data=GRANT, auth=neighbour.basic).status_code == 200

        time.sleep(3.2)

        assert http.post("/oauth2/token", data=GRANT, auth=svc.basic).status_code == 200


def test_unknown_client_ids_are_throttled_too(tmp_path: Path, start_server: ServerFactory) -> None:
    server = start_server(AUTH_MAX_AUTH_FAILURES="2")
    with server.http() as http:
        statuses = [
            http.post("/oauth2/token", data=GRANT, auth=("ghost", "guess")).status_code
            for _ in range(3)
        ]
    assert statuses == [401, 401, 429]


def test_a_success_resets_the_failure_count(tmp_path: Path, start_server: ServerFactory) -> None:
    database = tmp_path / "reset.sqlite3"
    svc = create_client(database, "svc", "detect")
    server = start_server(database, AUTH_MAX_AUTH_FAILURES="2")
    with server.http() as http:
        statuses = []
        for _ in range(3):
            statuses.append(http.post("/oauth2/token", data=GRANT, auth=("svc", "x")).status_code)
            statuses.append(http.post("/oauth2/token", data=GRANT, auth=svc.basic).status_code)
    assert statuses == [401, 200] * 3
