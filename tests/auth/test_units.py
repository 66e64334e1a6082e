"""In-process tests of pure functions, and of the app factory with an injected clock."""

from __future__ import annotations

import asyncio
import base64
import logging
import threading
import time
from pathlib import Path

import httpx
import pytest

from auth_service import admin, db_sqlite
from auth_service.db import StoreUnavailableError
from auth_service.db_sqlite import CACHE_KIB_PER_CONNECTION, PoolExhaustedError
from auth_service.db_sqlite import SQLiteDatabase as Database
from auth_service.errors import OAuthError
from auth_service.log_config import RedactQueryString
from auth_service.main import create_app
from auth_service.oauth_input import client_credentials, client_source, parse_form
from auth_service.ratelimit import (
    Attempt,
    AuthLimits,
    ClientAuthLimiter,
    FailureLimiter,
    Limit,
    Refusal,
    Wait,
)
from auth_service.security import ScryptParameters, hash_secret, token_digest, verify_secret
from auth_service.settings import AuthSettings
from auth_service.source import LOCAL, SourceAddress, parse_source_address
from auth_service.store import Store
from auth_service.syntax import (
    is_well_formed_bearer_token,
    parse_scope_list,
    parse_scope_parameter,
)
from auth_service.verification import VerificationPool


class ManualClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# Syntax


def test_scope_parameter_follows_rfc_6749_section_3_3() -> None:
    assert parse_scope_parameter("detect models:read") == {"detect", "models:read"}
    for bad in ("", " detect", "detect ", "a  b", 'a"b', "a\\b", "caf\u00e9"):
        with pytest.raises(ValueError):
            parse_scope_parameter(bad)


def test_scope_lists_accept_commas_or_spaces_and_drop_repeats() -> None:
    assert parse_scope_list("detect, classify detect") == ("detect", "classify")
    assert parse_scope_list("") == ()
    with pytest.raises(ValueError):
        parse_scope_list('ok,"quoted"')


def test_bearer_token_syntax() -> None:
    assert is_well_formed_bearer_token("abc-_.~+/==")
    assert not is_well_formed_bearer_token("")
    assert not is_well_formed_bearer_token("a b")
    assert not is_well_formed_bearer_token("=abc")
    assert not is_well_formed_bearer_token("a" * 513)


# Request parsing


def test_blank_parameters_are_absent_and_unknown_ones_ignored() -> None:
    assert parse_form(b"grant_type=client_credentials&scope=&extra=1") == {
        "grant_type": "client_credentials"
    }


def test_repeated_parameters_are_refused_even_when_blank() -> None:
    with pytest.raises(OAuthError) as raised:
        parse_form(b"scope=&scope=")
    assert raised.value.error == "invalid_request"


def _basic(raw: str) -> str:
    return "Basic " + base64.b64encode(raw.encode()).decode()


def test_basic_credentials_are_percent_decoded_after_base64() -> None:
    credentials = client_credentials(_basic("my%3Aid:pa+ss%25wo%20rd%2B"), {}, "realm")
    assert credentials is not None
    assert credentials.client_id == "my:id"
    # Percent-decoding, not form decoding: a raw '+' stays a '+' (curl -u, requests, authlib).
    assert credentials.client_secret == "pa+ss%wo rd+"
    assert "pa+ss" not in repr(credentials)


def test_a_raw_base64_secret_in_basic_arrives_unchanged() -> None:
    secret = "q+/Zx9k=+a/b=="
    credentials = client_credentials(_basic(f"svc:{secret}"), {}, "realm")
    assert credentials is not None
    assert credentials.client_secret == secret


def test_broken_percent_escapes_in_basic_are_refused() -> None:
    with pytest.raises(OAuthError) as raised:
        client_credentials(_basic("svc:abc%zz"), {}, "realm")
    assert raised.value.error == "invalid_request"


def test_no_credentials_at_all_is_none() -> None:
    assert client_credentials(None, {"grant_type": "client_credentials"}, "realm") is None


# Secrets


def test_secret_hashes_verify_and_carry_their_cost() -> None:
    cheap = ScryptParameters(n=2**10, r=8, p=1)
    encoded = hash_secret("correct horse", cheap)
    assert encoded.startswith("scrypt$n=1024,r=8,p=1$")
    assert verify_secret("correct horse", encoded)
    assert not verify_secret("correct horsf", encoded)
    assert hash_secret("correct horse", cheap) != encoded  # a fresh salt each time


def test_token_digest_is_sha256() -> None:
    assert token_digest("abc").hex().startswith("ba7816bf")


# Throttling


def test_failure_limiter_slides_its_window() -> None:
    clock = ManualClock(100.0)
    limiter = FailureLimiter(max_failures=2, window_seconds=10, clock=clock)
    limiter.record_failure("a")
    clock.now = 105.0
    limiter.record_failure("a")
    assert limiter.retry_after("a") == pytest.approx(5.0)
    assert limiter.retry_after("b") is None
    clock.now = 110.0  # the first failure has left the window
    assert limiter.retry_after("a") is None
    limiter.record_failure("a")
    assert limiter.retry_after("a") == pytest.approx(5.0)
    limiter.record_success("a")
    assert limiter.retry_after("a") is None


def test_failure_limiter_forgets_the_oldest_ids_beyond_its_capacity() -> None:
    limiter = FailureLimiter(max_failures=1, window_seconds=60, clock=ManualClock(), max_tracked=2)
    for key in ("a", "b", "c"):
        limiter.record_failure(key)
    assert limiter.retry_after("a") is None
    assert limiter.retry_after("b") is not None
    assert limiter.retry_after("c") is not None


def _reserved(result: Attempt | Refusal | Wait) -> Attempt:
    assert isinstance(result, Attempt), result
    return result


A, B, C = SourceAddress("192.0.2.1"), SourceAddress("192.0.2.2"), SourceAddress("192.0.2.3")


def test_attempts_hold_their_place_while_they_are_verified() -> None:
    limiter = ClientAuthLimiter(AuthLimits(per_client_and_source=2), ManualClock())
    first = _reserved(limiter.reserve("svc", A))
    second = _reserved(limiter.reserve("svc", A))
    # Both are still being verified: a third must wait for their verdicts, not overtake them.
    assert limiter.reserve("svc", A) == Wait(Limit.CLIENT_AND_SOURCE)
    _reserved(limiter.reserve("svc", B))  # another address has its own count
    limiter.failed(first)
    limiter.failed(second)
    refused = limiter.reserve("svc", A)
    assert isinstance(refused, Refusal)
    assert refused.limit is Limit.CLIENT_AND_SOURCE
    assert refused.retry_after == pytest.approx(60.0)


def test_a_success_lets_the_next_attempt_of_its_pair_in() -> None:
    limiter = ClientAuthLimiter(AuthLimits(per_client_and_source=1), ManualClock())
    first = _reserved(limiter.reserve("svc", A))
    assert isinstance(limiter.reserve("svc", A), Wait)
    limiter.succeeded(first)
    _reserved(limiter.reserve("svc", A))


def test_a_success_clears_its_pair_and_makes_the_source_known_good() -> None:
    clock = ManualClock(100.0)
    limits = AuthLimits(per_client_and_source=2, per_client=3, known_good_seconds=50)
    limiter = ClientAuthLimiter(limits, clock)
    limiter.failed(_reserved(limiter.reserve("svc", A)))  # before A was known: counts for svc
    limiter.succeeded(_reserved(limiter.reserve("svc", A)))
    limiter.failed(_reserved(limiter.reserve("svc", B)))
    limiter.failed(_reserved(limiter.reserve("svc", C)))  # svc's cap: three failures
    capped = limiter.reserve("svc", SourceAddress("192.0.2.9"))
    assert isinstance(capped, Refusal) and capped.limit is Limit.CLIENT
    owner = _reserved(limiter.reserve("svc", A))  # known-good: the cap doesn't apply
    assert owner.known_good
    limiter.cancel(owner)
    clock.now = 151.0  # known-good has expired, the failures (window 60 s) have not
    assert isinstance(limiter.reserve("svc", A), Refusal)
    assert limiter.refused == {Limit.CLIENT: 2}


def test_an_owners_success_does_not_wipe_other_addresses_failures() -> None:
    limiter = ClientAuthLimiter(AuthLimits(per_client=2), ManualClock())
    limiter.failed(_reserved(limiter.reserve("svc", B)))
    limiter.succeeded(_reserved(limiter.reserve("svc", A)))
    limiter.failed(_reserved(limiter.reserve("svc", C)))
    assert isinstance(limiter.reserve("svc", SourceAddress("192.0.2.9")), Refusal)


def test_the_per_source_window_spans_client_ids() -> None:
    limiter = ClientAuthLimiter(AuthLimits(per_source=2), ManualClock())
    limiter.failed(_reserved(limiter.reserve("a", A)))
    limiter.failed(_reserved(limiter.reserve("b", A)))
    refused = limiter.reserve("c", A)
    assert isinstance(refused, Refusal) and refused.limit is Limit.SOURCE
    _reserved(limiter.reserve("c", B))


def test_a_cancelled_attempt_is_not_counted() -> None:
    limiter = ClientAuthLimiter(AuthLimits(per_client_and_source=1), ManualClock())
    limiter.cancel(_reserved(limiter.reserve("svc", A)))
    _reserved(limiter.reserve("svc", A))


def test_source_addresses_are_normalised() -> None:
    assert parse_source_address(" 203.0.113.7 ") == SourceAddress("203.0.113.7")
    assert parse_source_address("::ffff:203.0.113.7") == SourceAddress("203.0.113.7")
    one, other = parse_source_address("2001:db8:1:2::1"), parse_source_address("2001:db8:1:2:ff::9")
    assert one == other == SourceAddress("2001:db8:1:2::/64")  # one subscriber's /64
    assert parse_source_address("2001:db8:1:3::1") != one
    with pytest.raises(ValueError):
        parse_source_address("gateway")


def test_the_source_is_x_real_ip_else_the_peer_else_local() -> None:
    assert client_source(["198.51.100.7"], "127.0.0.1") == SourceAddress("198.51.100.7")
    assert client_source([], "127.0.0.1") == SourceAddress("127.0.0.1")
    assert client_source([], None) == LOCAL
    assert client_source(["unix:"], None) == LOCAL
    assert client_source([], "testclient") == LOCAL
    for headers in (["192.0.2.1", "192.0.2.2"], ["192.0.2.1, 192.0.2.2"], ["bogus"]):
        with pytest.raises(OAuthError) as raised:
            client_source(headers, "127.0.0.1")
        assert (raised.value.error, raised.value.status) == ("invalid_request", 400)


def test_the_verification_pool_gives_places_back_after_errors() -> None:
    pool = VerificationPool(workers=1, max_pending=0)

    def fail() -> None:
        raise RuntimeError("broken hash")

    async def scenario() -> None:
        with pytest.raises(RuntimeError):
            await pool.run(fail)
        assert await pool.run(lambda: 42) == 42
        assert (pool.running, pool.waiting, pool.rejected) == (0, 0, 0)

    try:
        asyncio.run(scenario())
    finally:
        pool.shutdown()


def test_the_pool_starts_every_worker_at_once() -> None:
    pool = VerificationPool(workers=3, max_pending=0)
    names: set[str] = set()
    pool.start(lambda: names.add(threading.current_thread().name))
    pool.shutdown()
    assert len(names) == 3


# Database


def test_readiness_reflects_whether_the_database_can_be_used(tmp_path: Path) -> None:
    assert not Database(tmp_path).is_reachable()  # a directory is no database
    assert not Database(tmp_path / "empty.sqlite3").is_reachable()  # no schema yet
    database = Database(tmp_path / "auth.sqlite3").open()
    assert database.is_reachable()
    database.close()


def test_migrations_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "auth.sqlite3"
    store = Store(Database(path).open())
    admin.create_client(store, ManualClock(), "svc", ("detect",), False)
    reopened = Store(Database(path).open())
    assert [client.client_id for client in reopened.list_clients()] == ["svc"]


def test_connections_outlive_threads_in_a_bounded_pool(tmp_path: Path) -> None:
    database = Database(tmp_path / "auth.sqlite3", pool_size=2).open()
    store = Store(database)
    for _ in range(20):  # worker threads that come and go, as anyio's do
        worker = threading.Thread(target=store.get_client, args=("svc",))
        worker.start()
        worker.join()
    assert database.open_connections == 1

    in_use, most_in_use, lock = 0, 0, threading.Lock()

    def hold_a_connection() -> None:
        nonlocal in_use, most_in_use
        with database.connection():
            with lock:
                in_use += 1
                most_in_use = max(most_in_use, in_use)
            time.sleep(0.02)
            with lock:
                in_use -= 1

    workers = [threading.Thread(target=hold_a_connection) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert most_in_use == 2
    assert database.open_connections == 2
    database.close()
    assert database.open_connections == 0


def test_a_lent_connection_has_a_bounded_page_cache(tmp_path: Path) -> None:
    database = Database(tmp_path / "auth.sqlite3").open()
    with database.connection() as connection:
        # Negative: KiB, not pages; the pool then holds at most pool_size * 256 KiB.
        assert connection.execute("PRAGMA cache_size").fetchone()[0] == -CACHE_KIB_PER_CONNECTION
    assert CACHE_KIB_PER_CONNECTION <= 512
    database.close()


def test_a_connection_comes_back_without_an_open_transaction(tmp_path: Path) -> None:
    database = Database(tmp_path / "auth.sqlite3", pool_size=1).open()
    with database.connection() as connection:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("DELETE FROM clients")
    with database.connection() as again:
        assert again is connection
        assert not again.in_transaction
    database.close()


def test_a_write_that_raises_changes_nothing(tmp_path: Path) -> None:
    database = Database(tmp_path / "auth.sqlite3", pool_size=1).open()
    store = Store(database)
    admin.create_client(store, ManualClock(), "svc", ("detect",), False)
    with pytest.raises(RuntimeError), database.write() as connection:
        connection.execute("DELETE FROM clients")
        raise RuntimeError("half-way")
    assert [client.client_id for client in store.list_clients()] == ["svc"]
    database.close()


def test_waiting_writers_leave_connections_for_readers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_sqlite, "BUSY_TIMEOUT_MS", 1000)
    database = Database(tmp_path / "auth.sqlite3", pool_size=2).open()
    writing, finish = threading.Event(), threading.Event()

    def long_write() -> None:
        with database.write():
            writing.set()
            finish.wait(5)

    def short_write() -> None:
        with database.write() as connection:
            connection.execute("DELETE FROM tokens")

    writers = [threading.Thread(target=long_write)] + [
        threading.Thread(target=short_write) for _ in range(3)
    ]
    writers[0].start()
    assert writing.wait(5)
    for writer in writers[1:]:
        writer.start()
    time.sleep(0.1)
    assert database.open_connections == 1  # the short writers wait for their turn, not holding one
    with database.connection() as connection:
        assert connection.execute("SELECT count(*) FROM clients").fetchone()[0] == 0
    finish.set()
    for writer in writers:
        writer.join()
    database.close()


def test_an_exhausted_pool_refuses_after_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_sqlite, "BUSY_TIMEOUT_MS", 50)
    database = Database(tmp_path / "auth.sqlite3", pool_size=1).open()
    with database.connection():
        refused: list[BaseException] = []

        def borrow() -> None:
            try:
                with database.connection():
                    pass
            except StoreUnavailableError as error:
                refused.append(error)

        worker = threading.Thread(target=borrow)
        worker.start()
        worker.join()
    assert len(refused) == 1 and isinstance(refused[0], PoolExhaustedError)
    database.close()


# Logging


def test_access_log_lines_lose_their_query_string() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", "/oauth2/check?access_token=SECRET", "1.1", 401),
        None,
    )
    assert RedactQueryString().filter(record)
    assert "SECRET" not in record.getMessage()
    assert "/oauth2/check?[redacted]" in record.getMessage()


# The app factory with an injected clock (in process, real SQLite file, lifespan run)


def test_token_expiry_follows_the_injected_clock(tmp_path: Path) -> None:
    clock = ManualClock(1_800_000_000.25)
    settings = AuthSettings(
        database_path=tmp_path / "clock.sqlite3",
        token_ttl_seconds=60,
        bootstrap_client_id="svc",
        bootstrap_client_secret="a-secret-for-the-clock-test",
        bootstrap_scopes=("detect",),
        bootstrap_introspect=True,
    )
    app = create_app(settings, clock=clock)

    async def scenario() -> None:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://auth") as http:
                auth = ("svc", "a-secret-for-the-clock-test")
                issued = await http.post(
                    "/oauth2/token", data={"grant_type": "client_credentials"}, auth=auth
                )
                token = issued.json()["access_token"]
                headers = {"Authorization": f"Bearer {token}", "X-Required-Scope": "detect"}
                claims = (
                    await http.post("/oauth2/introspect", data={"token": token}, auth=auth)
                ).json()
                assert (claims["iat"], claims["exp"]) == (1_800_000_000, 1_800_000_061)

                clock.now = 1_800_000_060.99
                assert (await http.get("/oauth2/check", headers=headers)).status_code == 200
                clock.now = 1_800_000_061.0
                expired = await http.get("/oauth2/check", headers=headers)
                assert expired.status_code == 401
                assert expired.json()["detail"] == "the token has expired"
                introspected = await http.post(
                    "/oauth2/introspect", data={"token": token}, auth=auth
                )
                assert introspected.json() == {"active": False}

    asyncio.run(scenario())


def test_settings_refuse_non_loopback_hosts() -> None:
    assert AuthSettings(host="127.0.0.2").host == "127.0.0.2"
    assert AuthSettings(host="::1").host == "::1"
    for host in ("0.0.0.0", "10.0.0.1", "example.org", "::"):
        with pytest.raises(ValueError, match="AUTH_ALLOW_NON_LOOPBACK"):
            AuthSettings(host=host)
        # Only when a setting says so explicitly (a pod, docs/auth.md "Listening").
        assert AuthSettings(host=host, allow_non_loopback=True).host == host
