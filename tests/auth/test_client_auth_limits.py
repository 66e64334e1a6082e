"""Bounds on client authentication: the verification queue (503), failures counted before the
hash (no race past the limit), and limits per address that nobody can turn into a lockout."""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth_service import admin
from auth_service.db_sqlite import SQLiteDatabase as Database
from auth_service.settings import AuthSettings
from auth_service.store import Store

from .conftest import Deployment, ServerFactory
from .support import Credentials, create_client, in_process

GRANT = {"grant_type": "client_credentials"}
ATTACKER = {"X-Real-IP": "203.0.113.66"}
OWNER = {"X-Real-IP": "198.51.100.7"}


def _address(number: int) -> dict[str, str]:
    return {"X-Real-IP": f"192.0.2.{number}"}


def _registered(database: Path, client_id: str) -> Credentials:
    store = Store(Database(database).open())
    secret = admin.create_client(store, time.time, client_id, ("detect",), False)
    return Credentials(client_id, secret)


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


class GatedScrypt:
    """hashlib.scrypt that counts its calls and, while closed, holds them (a slow hash)."""

    def __init__(self, real: Callable[..., bytes], delay: float = 0.0) -> None:
        self.real = real
        self.delay = delay
        self.calls = 0
        self.open = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> bytes:
        with self._lock:
            self.calls += 1
        self.open.wait(10)
        time.sleep(self.delay)
        return self.real(*args, **kwargs)


# Item 4: a bounded queue of verifications


def test_a_full_verification_queue_answers_503_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = AuthSettings(
        database_path=tmp_path / "busy.sqlite3",
        verification_workers=1,
        max_pending_verifications=1,
    )
    scrypt = GatedScrypt(hashlib.scrypt)

    async def scenario() -> None:
        async with in_process(settings) as http:
            monkeypatch.setattr(hashlib, "scrypt", scrypt)  # after the start's own hashes
            try:
                requests = [
                    asyncio.create_task(
                        http.post(
                            "/oauth2/token",
                            data=GRANT,
                            auth=(f"ghost{n}", "guess"),
                            headers=_address(n),
                        )
                    )
                    for n in range(5)
                ]
                # One hash runs (held), one waits for the thread: the other three are refused
                # while the hash is still held, i.e. without waiting for it.
                done, waiting = await asyncio.wait(requests, timeout=5)
                assert len(done) == 3 and len(waiting) == 2
                metrics = (await http.get("/metrics")).text
            finally:
                scrypt.open.set()
            for response in [task.result() for task in done]:
                assert response.status_code == 503
                assert response.headers["retry-after"] == "1"
                assert response.headers["cache-control"] == "no-store"
                assert response.json()["error"] == "temporarily_unavailable"
            assert [(await task).status_code for task in waiting] == [401, 401]
        assert _metric(metrics, "auth_secret_verifications_rejected_total") == 3
        assert _metric(metrics, "auth_secret_verifications_running") == 1
        assert _metric(metrics, "auth_secret_verifications_waiting") == 1
        assert scrypt.calls == 2

    asyncio.run(scenario())


def test_a_flood_gets_503s_from_a_real_server(tmp_path: Path, start_server: ServerFactory) -> None:
    server = start_server(
        AUTH_VERIFICATION_WORKERS="1",
        AUTH_MAX_PENDING_VERIFICATIONS="1",
        AUTH_MAX_SOURCE_AUTH_FAILURES="1000",
    )

    async def flood() -> list[tuple[httpx.Response, float]]:
        limits = httpx.Limits(max_connections=40)
        async with httpx.AsyncClient(
            base_url=server.url, timeout=30, limits=limits, trust_env=False
        ) as http:

            async def one(n: int) -> tuple[httpx.Response, float]:
                started = time.perf_counter()
                response = await http.post(
                    "/oauth2/introspect", data={"token": "x"}, auth=(f"ghost{n}", "guess")
                )
                return response, time.perf_counter() - started

            return await asyncio.gather(*(one(n) for n in range(40)))

    answers = asyncio.run(flood())
    statuses = [response.status_code for response, _ in answers]
    assert set(statuses) == {401, 503}, statuses
    assert 503 in statuses  # 40 at once against one thread and one place in the queue
    refused = [seconds for response, seconds in answers if response.status_code == 503]
    assert all(r.headers["retry-after"] == "1" for r, _ in answers if r.status_code == 503)
    # Refused without waiting for a hash: faster than the slowest admitted request.
    admitted = [seconds for response, seconds in answers if response.status_code == 401]
    assert min(refused) < max(admitted)
    with server.http() as http:
        metrics = http.get("/metrics").text
    assert _metric(metrics, "auth_secret_verifications_rejected_total") == statuses.count(503)


# Item 5: failures are counted before the hash


def test_concurrent_wrong_guesses_reach_scrypt_at_most_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = tmp_path / "race.sqlite3"
    _registered(database, "svc")
    settings = AuthSettings(database_path=database, max_auth_failures=5)
    scrypt = GatedScrypt(hashlib.scrypt, delay=0.02)
    scrypt.open.set()

    async def scenario() -> list[int]:
        async with in_process(settings) as http:
            monkeypatch.setattr(hashlib, "scrypt", scrypt)
            guesses = [
                http.post("/oauth2/token", data=GRANT, auth=("svc", f"guess-{n}"), headers=ATTACKER)
                for n in range(25)
            ]
            return [response.status_code for response in await asyncio.gather(*guesses)]

    statuses = asyncio.run(scenario())
    assert scrypt.calls <= 5
    assert sorted(statuses) == [401] * 5 + [429] * 20


# Item 6: no lockout by strangers


def test_an_attackers_address_is_limited_but_the_owner_is_not_locked_out(
    tmp_path: Path, start_server: ServerFactory
) -> None:
    database = tmp_path / "lockout.sqlite3"
    svc = create_client(database, "svc", "detect")
    server = start_server(database)  # the defaults: 5 per client and address
    with server.http() as http:
        wrong = [
            http.post("/oauth2/token", data=GRANT, auth=("svc", "wrong"), headers=ATTACKER)
            for _ in range(5)
        ]
        assert [response.status_code for response in wrong] == [401] * 5
        # The attacker's address is limited, whatever it sends now ...
        limited = http.post("/oauth2/token", data=GRANT, auth=svc.basic, headers=ATTACKER)
        assert limited.status_code == 429
        assert limited.json()["error"] == "invalid_client"
        # ... and the owner, elsewhere, is not.
        owner = http.post("/oauth2/token", data=GRANT, auth=svc.basic, headers=OWNER)
        assert owner.status_code == 200
        # Without X-Real-IP the TCP peer is the source: not the attacker either.
        assert http.post("/oauth2/token", data=GRANT, auth=svc.basic).status_code == 200


def test_the_per_client_cap_stops_distributed_guessing_but_not_known_good_sources(
    tmp_path: Path, start_server: ServerFactory
) -> None:
    database = tmp_path / "distributed.sqlite3"
    svc = create_client(database, "svc", "detect")
    server = start_server(database, AUTH_MAX_AUTH_FAILURES="2", AUTH_MAX_CLIENT_AUTH_FAILURES="6")
    with server.http() as http:
        assert (
            http.post("/oauth2/token", data=GRANT, auth=svc.basic, headers=OWNER).status_code == 200
        )
        guesses = [
            http.post("/oauth2/token", data=GRANT, auth=("svc", "guess"), headers=_address(n))
            for n in range(1, 7)
        ]
        assert [response.status_code for response in guesses] == [401] * 6
        # The cap is reached: a seventh address is refused without a hash, right secret or not.
        capped = http.post("/oauth2/token", data=GRANT, auth=svc.basic, headers=_address(7))
        assert capped.status_code == 429
        # The owner's address authenticated recently: the cap does not apply to it.
        owner = http.post("/oauth2/token", data=GRANT, auth=svc.basic, headers=OWNER)
        assert owner.status_code == 200
        # Another client is not affected by svc's cap.
        assert (
            http.post("/oauth2/token", data=GRANT, auth=("other", "x"), headers=_address(8))
        ).status_code == 401
        metrics = http.get("/metrics").text
    assert 'auth_client_auth_throttled_total{limit="client"} 1.0' in metrics


def test_one_address_spraying_client_ids_is_limited(
    tmp_path: Path, start_server: ServerFactory
) -> None:
    database = tmp_path / "spray.sqlite3"
    svc = create_client(database, "svc", "detect")
    server = start_server(database, AUTH_MAX_SOURCE_AUTH_FAILURES="3")
    with server.http() as http:
        sprayed = [
            http.post("/oauth2/token", data=GRANT, auth=(f"ghost{n}", "x"), headers=ATTACKER)
            for n in range(4)
        ]
        assert [response.status_code for response in sprayed] == [401, 401, 401, 429]
        assert (
            http.post("/oauth2/token", data=GRANT, auth=svc.basic, headers=ATTACKER).status_code
            == 429
        )
        assert (
            http.post("/oauth2/token", data=GRANT, auth=svc.basic, headers=OWNER).status_code == 200
        )


def test_a_malformed_x_real_ip_is_refused(deployment: Deployment) -> None:
    for headers in ({"X-Real-IP": "not-an-address"}, [("X-Real-IP", "192.0.2.1")] * 2):
        response = deployment.http.post(
            "/oauth2/token", data=GRANT, auth=deployment.other.basic, headers=headers
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
