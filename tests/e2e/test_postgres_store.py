"""The whole gateway on a PostgreSQL store: two stacks share one database, and a stopped
database refuses (503 auth_unavailable), never admits, then recovers without a restart."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.harness import wait_until
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
    second = Stack(second_base, cache_seconds=2, database_url=url)
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
