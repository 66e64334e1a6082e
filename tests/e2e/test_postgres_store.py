"""The whole gateway on a PostgreSQL store: two stacks share one database, and a stopped
database refuses (503 auth_unavailable), never admits, then recovers without a restart."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest

from tests.auth.support import AuthServer
from tests.harness import free_port, running_app, wait_until
from tests.postgres import PostgresServer, start_or_skip

from .conftest import running_stack
from .stack import Stack

TEXT = {"text": "the striker scored twice in the second half"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresServer]:
    server = start_or_skip()  # this module stops it: not the session's cluster
    yield server
    server.remove()


@pytest.fixture(scope="module")
def pair(
    cluster: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Stack, Stack]]:
    url = cluster.create_database()
    # The first stack registers its clients in the database; the second, on the same database,
    # needs no registration of its own: that is the point.
    first_base, second_base = tmp_path_factory.mktemp("pg-one"), tmp_path_factory.mktemp("pg-two")
    one = running_stack(first_base, cache_seconds=2, database_url=url)
    first = next(one)
    # The second gateway's URL has no password: libpq takes it from PGPASSWORD, which the
    # launcher passes to the auth service (and to nothing else).
    without_password = url.replace(f":{quote(cluster.password, safe='')}@", "@")
    assert cluster.password not in without_password
    second = Stack(
        second_base,
        cache_seconds=2,
        database_url=without_password,
        extra_env={"PGPASSWORD": cluster.password},
    )
    second.run_dir.mkdir(parents=True)
    second.start()
    second.secrets = first.secrets  # the same clients: one store
    try:
        yield first, second
    finally:
        second.stop()
        one.close()


def _classify(stack: Stack, token: str) -> httpx.Response:
    return httpx.post(
        f"{stack.url}/classify",
        json=TEXT,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_a_token_from_one_gateway_works_at_the_other_and_so_does_its_revocation(
    pair: tuple[Stack, Stack],
) -> None:
    first, second = pair
    token = first.token("full")
    assert _classify(second, token).status_code == 200
    revoked = httpx.post(
        f"{second.url}/oauth2/revoke",
        data={"token": token},
        auth=("full", first.secrets["full"]),
        timeout=10,
    )
    assert revoked.status_code == 200
    # The first gateway never cached this token: refused at once.
    assert _classify(first, token).status_code == 401


def test_a_stopped_database_refuses_uncached_tokens_and_recovers_by_itself(
    pair: tuple[Stack, Stack], cluster: PostgresServer
) -> None:
    first, second = pair
    unused = first.token("full")  # issued before the fault, never checked yet
    cluster.stop()
    try:
        for stack in pair:
            refused = _classify(stack, unused)
            assert refused.status_code == 503
            assert refused.json()["error"] == "auth_unavailable"
        token = httpx.post(
            f"{first.url}/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=("full", first.secrets["full"]),
            timeout=30,
        )
        assert token.status_code == 503
        assert token.json()["error"] == "temporarily_unavailable"
    finally:
        cluster.restart()
    # No token issued before the fault is lost, and no restart of either stack is needed.
    assert wait_until(lambda: _classify(second, unused).status_code == 200, timeout=20)
    assert _classify(first, unused).status_code == 200
    assert _classify(second, first.token("full")).status_code == 200
    assert first.is_ready() and second.is_ready()


def test_the_stack_logs_the_store_without_its_password(
    pair: tuple[Stack, Stack], cluster: PostgresServer
) -> None:
    first, _ = pair
    assert wait_until(lambda: "auth service ready database=postgresql://" in first.output(), 5)
    assert cluster.password not in first.output()


def test_a_gateway_in_front_of_remote_app_and_auth_replicas(
    cluster: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The Kubernetes gateway variant on one host: nginx with its own app and auth programs
    idle (GATEWAY_LOCAL_APP/AUTH=false) proxies to an app and two auth replicas elsewhere, the
    replicas sharing one PostgreSQL database; losing one replica loses nothing."""
    base = tmp_path_factory.mktemp("remote")
    url = cluster.create_database()
    replicas = [
        AuthServer(url, base / f"auth{index}.log", {"AUTH_DATABASE_TIMEOUT_SECONDS": "2"}).start()
        for index in range(2)
    ]
    app_port = free_port()
    app_http = httpx.Client(base_url=f"http://127.0.0.1:{app_port}", timeout=30, trust_env=False)
    stack = Stack(
        base / "gateway",
        database_url=url,
        extra_env={
            "GATEWAY_LOCAL_APP": "false",
            "GATEWAY_LOCAL_AUTH": "false",
            "GATEWAY_APP_UPSTREAM": f"127.0.0.1:{app_port}",
            "GATEWAY_AUTH_UPSTREAM": ",".join(f"127.0.0.1:{r.port}" for r in replicas),
        },
    )
    try:
        with running_app({"APP_PORT": str(app_port), "APP_POLL_INTERVAL_S": "0"}, app_http):
            stack.run_dir.mkdir(parents=True)
            stack.add_client("full", "classify")
            stack.start()
            try:
                # The local programs idle: neither opened its socket.
                assert not (stack.run_dir / "app.sock").exists()
                assert not (stack.run_dir / "auth.sock").exists()
                assert (stack.run_dir / "supervisor.sock").exists()
                tokens = [stack.token("full") for _ in range(4)]
                assert all(_classify(stack, token).status_code == 200 for token in tokens)
                replicas[0].stop()
                # nginx moves on to the other replica: no request fails, old tokens still work.
                assert all(_classify(stack, token).status_code == 200 for token in tokens)
                assert _classify(stack, stack.token("full")).status_code == 200
            finally:
                assert stack.stop() == 0
    finally:
        app_http.close()
        for replica in replicas:
            replica.stop()
