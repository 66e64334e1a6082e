"""A flood of client authentications with unknown client ids, as the audit made it (issue 12).

Each such request costs the auth service a full scrypt (16 MiB, tens of ms). 256 of them, 64 at
a time, from one address (127.0.0.2, the attacker) used to push a legitimate token request from
0.3 s to 6-12 s. Now nginx queues and limits them per address (GATEWAY_CLIENT_AUTH_RATE,
burst 20) and the auth service bounds its verifications (a full queue answers 503 at once): the
legitimate client at another address gets its token within a second, and requests with a
cached token do not notice.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import running_stack
from tests.e2e.stack import Stack

FLOOD_REQUESTS = 256
FLOOD_CONCURRENCY = 64
RATE_PER_SECOND = 10  # the default GATEWAY_CLIENT_AUTH_RATE
BURST = 20  # nginx.conf: limit_req zone=client_auth burst=20
ATTACKER = "127.0.0.2"  # any 127/8 address is the loopback interface


@pytest.fixture(scope="module")
def flooded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Default client-auth rate (the session stack of this suite lifts it for the soak).
    yield from running_stack(tmp_path_factory.mktemp("flood"), cache_seconds=5)


async def _flood(stack: Stack) -> tuple[Counter[int], float, float]:
    """The attacker's requests: introspect and revoke, random client ids. Returns the statuses,
    the slowest answer and the flood's length in seconds."""
    transport = httpx.AsyncHTTPTransport(local_address=ATTACKER)
    limits = httpx.Limits(max_connections=FLOOD_CONCURRENCY)
    statuses: Counter[int] = Counter()
    slowest = 0.0
    gate = asyncio.Semaphore(FLOOD_CONCURRENCY)

    async def one(client: httpx.AsyncClient, n: int) -> None:
        nonlocal slowest
        async with gate:
            path = "/oauth2/introspect" if n % 2 else "/oauth2/revoke"
            started = time.monotonic()
            response = await client.post(
                path,
                data={"token": "x" * 43},
                auth=(f"nobody-{secrets.token_hex(4)}", secrets.token_urlsafe(32)),
            )
            slowest = max(slowest, time.monotonic() - started)
            statuses[response.status_code] += 1

    started = time.monotonic()
    async with httpx.AsyncClient(
        base_url=stack.url, transport=transport, limits=limits, timeout=30
    ) as client:
        await asyncio.gather(*(one(client, n) for n in range(FLOOD_REQUESTS)))
    return statuses, slowest, time.monotonic() - started


async def _legitimate(stack: Stack, cached_token: str) -> tuple[list[float], list[int], float]:
    """While the flood runs: five token requests of the real client, one after another, and
    cached-token model calls beside them. Returns the token latencies, the cached calls'
    statuses and the slowest cached call."""
    await asyncio.sleep(0.3)  # the flood is under way
    token_latencies: list[float] = []
    cached_statuses: list[int] = []
    slowest_cached = 0.0
    headers = {"Authorization": f"Bearer {cached_token}"}
    async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:

        async def token_requests() -> None:
            for _ in range(5):
                started = time.monotonic()
                response = await client.post(
                    "/oauth2/token",
                    data={"grant_type": "client_credentials"},
                    auth=("full", stack.secrets["full"]),
                )
                token_latencies.append(time.monotonic() - started)
                assert response.status_code == 200, response.text

        async def cached_calls() -> None:
            nonlocal slowest_cached
            for _ in range(40):
                started = time.monotonic()
                response = await client.get("/v1/models/vae", headers=headers)
                slowest_cached = max(slowest_cached, time.monotonic() - started)
                cached_statuses.append(response.status_code)
                await asyncio.sleep(0.02)

        await asyncio.gather(token_requests(), cached_calls())
    return token_latencies, cached_statuses, slowest_cached


def test_flood_of_unknown_clients_does_not_starve_the_real_one(flooded: Stack) -> None:
    cached_token = flooded.token("full", "models:read")
    assert httpx.get(
        f"{flooded.url}/v1/models/vae",
        headers={"Authorization": f"Bearer {cached_token}"},
        timeout=10,
    ).is_success  # its answer is cached now (5 s)

    async def both():
        return await asyncio.gather(_flood(flooded), _legitimate(flooded, cached_token))

    (statuses, slowest_flood, flood_seconds), (latencies, cached, slowest_cached) = asyncio.run(
        both()
    )
    print(
        f"flood: {dict(statuses)} in {flood_seconds:.1f} s (slowest {slowest_flood:.2f} s);"
        f" token requests {[round(t, 2) for t in latencies]} s;"
        f" cached calls slowest {slowest_cached:.3f} s"
    )
    assert set(statuses) <= {401, 429, 503}, statuses  # refused, limited or shed; never a 500
    # At most the burst plus the rate reached the auth service's scrypt (401 invalid_client).
    assert statuses[401] <= BURST + RATE_PER_SECOND * flood_seconds + 2, statuses
    assert statuses[429] > 0
    assert max(latencies) < 1.0, latencies
    assert cached == [200] * len(cached), Counter(cached)
    assert slowest_cached < 1.0
