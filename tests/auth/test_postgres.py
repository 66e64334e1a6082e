"""The PostgreSQL store: replicas that share it, its failures, its schema and its secrets.

Every other store test runs on both backends (store_url, deployment); these are what only a
shared server has. The fault tests stop and restart a cluster of their own.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from auth_service.db import DatabaseTarget, StoreUnavailableError, open_database
from auth_service.migrations import POSTGRESQL_MIGRATIONS, SQLITE_MIGRATIONS
from auth_service.settings import AuthSettings
from auth_service.store import Store
from tests.harness import wait_until
from tests.postgres import PostgresServer, start_or_skip

from .conftest import ServerFactory
from .support import (
    AuthServer,
    check,
    create_client,
    introspect,
    run_cli,
    token_for,
)

GRANT = {"grant_type": "client_credentials"}


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A cluster that this test alone uses: it may stop it."""
    server = start_or_skip()
    yield server
    server.remove()


def test_a_token_issued_by_one_replica_works_at_the_other(
    postgres: PostgresServer, start_server: ServerFactory
) -> None:
    url = postgres.create_database()
    svc = create_client(url, "svc", "detect,vae")
    inspector = create_client(url, "inspector", introspect=True)
    first, second = start_server(url), start_server(url)
    with first.http() as one, second.http() as two:
        token = token_for(one, svc)
        assert check(two, token).status_code == 200
        assert introspect(two, inspector, token).json()["client_id"] == "svc"

        # A revocation at one replica is refused at the other on the next check: no cache here.
        assert two.post("/oauth2/revoke", data={"token": token}, auth=svc.basic).is_success
        assert check(one, token).status_code == 401
        assert introspect(one, inspector, token).json() == {"active": False}

        # A client registered with the CLI is known to both at once.
        late = create_client(url, "late", "classify")
        assert check(two, token_for(one, late), "classify").status_code == 200
        run_cli(url, "clients", "disable", "late")
        assert two.post("/oauth2/token", data=GRANT, auth=late.basic).status_code == 401


def test_a_stopped_server_gives_503_never_200_and_recovery_needs_no_restart(
    own_postgres: PostgresServer, start_server: ServerFactory
) -> None:
    url = own_postgres.create_database()
    svc = create_client(url, "svc", "detect")
    server = start_server(url, AUTH_DATABASE_TIMEOUT_SECONDS="2")
    with server.http() as http:
        before = token_for(http, svc)
        own_postgres.stop()

        refused = check(http, before)
        assert refused.status_code == 503  # nginx and ingress-nginx refuse on a 5xx
        assert refused.json()["error"] == "temporarily_unavailable"
        assert refused.headers["retry-after"] == "1"
        issued = http.post("/oauth2/token", data=GRANT, auth=svc.basic)
        assert issued.status_code == 503
        assert issued.json()["error"] == "temporarily_unavailable"
        assert http.get("/readyz").status_code == 503
        started = time.monotonic()
        assert check(http, before).status_code == 503
        assert time.monotonic() - started < 1.5  # known to be down: no full timeout per request

        own_postgres.restart()
        assert wait_until(lambda: check(http, before).status_code == 200, timeout=15)
        assert http.get("/readyz").status_code == 200
        assert check(http, token_for(http, svc)).status_code == 200
        metrics = http.get("/metrics").text
    assert 'auth_checks_total{outcome="unavailable"}' in metrics
    assert own_postgres.password not in server.log_text()


def test_replicas_that_start_together_migrate_once(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    url = postgres.create_database()
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            open_database(DatabaseTarget.parse(url)).open().close()
        except BaseException as error:
            errors.append(error)

    openers = [threading.Thread(target=open_one) for _ in range(4)]
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join()
    assert errors == []
    with psycopg.connect(url) as connection:
        versions = connection.execute("SELECT version FROM schema_migrations").fetchall()
    assert versions == [(number,) for number in range(1, len(POSTGRESQL_MIGRATIONS) + 1)]


def test_both_backends_have_the_same_schema(postgres: PostgresServer, tmp_path: Path) -> None:
    assert len(SQLITE_MIGRATIONS) == len(POSTGRESQL_MIGRATIONS)
    sqlite_path = tmp_path / "schema.sqlite3"
    open_database(DatabaseTarget(sqlite_path=sqlite_path)).open().close()
    with sqlite3.connect(sqlite_path) as connection:
        sqlite_columns = {
            (table, row[1], bool(row[3]))
            for table in ("clients", "tokens")
            for row in connection.execute(f"PRAGMA table_info({table})")
        }
    url = postgres.create_database()
    open_database(DatabaseTarget.parse(url)).open().close()
    with psycopg.connect(url) as connection:
        postgres_columns = set(
            connection.execute(
                "SELECT table_name, column_name, is_nullable = 'NO' FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name IN ('clients', 'tokens')"
            ).fetchall()
        )
    assert sqlite_columns == postgres_columns
    assert ("tokens", "revoked_at", False) in postgres_columns


def test_a_service_that_cannot_reach_its_database_does_not_start(tmp_path: Path) -> None:
    server = AuthServer(
        database="postgresql://nobody:secret-password-1@127.0.0.1:9/none",
        log_path=tmp_path / "server.log",
        settings={"AUTH_DATABASE_TIMEOUT_SECONDS": "1"},
    )
    with pytest.raises(AssertionError, match="did not start"):
        server.start()
    log = server.log_text()
    assert "Connection refused" in log or "connection failed" in log
    assert "secret-password-1" not in log


def test_a_store_on_a_stopped_server_raises_the_domain_error(
    own_postgres: PostgresServer,
) -> None:
    database = open_database(DatabaseTarget.parse(own_postgres.create_database()), 2, 1).open()
    store = Store(database)
    own_postgres.stop()
    with pytest.raises(StoreUnavailableError):
        store.get_client("svc")
    assert not database.is_reachable()
    own_postgres.restart()
    assert wait_until(database.is_reachable, timeout=15)
    assert store.get_client("svc") is None
    database.close()


# Settings and URLs


def test_the_url_selects_the_backend_and_its_description_hides_the_password() -> None:
    target = DatabaseTarget.parse("postgresql://gw:p%40ss@db.internal:5433/tokens")
    assert target.postgresql_url is not None and target.sqlite_path is None
    assert target.description == "postgresql://gw@db.internal:5433/tokens"
    assert DatabaseTarget.parse("postgres://db/x").postgresql_url == "postgres://db/x"
    assert DatabaseTarget.parse("sqlite:///var/auth.sqlite3").sqlite_path == Path(
        "var/auth.sqlite3"
    )
    assert DatabaseTarget.parse("sqlite:////data/auth.sqlite3").sqlite_path == Path(
        "/data/auth.sqlite3"
    )
    assert DatabaseTarget.parse("var/x.sqlite3").sqlite_path == Path("var/x.sqlite3")
    with pytest.raises(ValueError, match="unsupported database URL scheme 'mysql'"):
        DatabaseTarget.parse("mysql://root:pw@db/x")


def test_the_url_setting_wins_over_the_path_and_is_never_echoed(tmp_path: Path) -> None:
    settings = AuthSettings(
        database_path=tmp_path / "unused.sqlite3", database_url="postgresql://gw:pw@db/tokens"
    )
    assert settings.database.postgresql_url == "postgresql://gw:pw@db/tokens"
    assert "pw@" not in repr(settings)
    assert AuthSettings(database_path=tmp_path / "a.sqlite3").database.sqlite_path == (
        tmp_path / "a.sqlite3"
    )
    with pytest.raises(ValueError) as refused:
        AuthSettings(database_url="mysql://root:hunter2-secret@db/x")
    assert "hunter2-secret" not in str(refused.value)


def test_the_cli_refuses_an_unreachable_database_with_a_message(tmp_path: Path) -> None:
    result = run_cli(
        "postgresql://nobody:another-secret-9@127.0.0.1:9/none",
        "clients",
        "list",
        check=False,
    )
    assert result.returncode == 1
    assert "the token database is unavailable" in result.stderr
    assert "another-secret-9" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
