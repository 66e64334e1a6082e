"""The token cache against a real auth service: reuse, expiry, revocation."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
from mgw import GatewayError
from mgw._auth import TokenCache, refresh_margin
from mgw._types import Token

from tests.e2e.stack import PROJECT_ROOT, Stack

from .conftest import SHORT_TTL_SECONDS, Recorder, gateway_answers, recording_gateway

INVALID_TOKEN = 'error="invalid_token"'
AUTH_CLI = (sys.executable, "-m", "auth_service")


def _revoke(stack: Stack, client_id: str, token: str) -> None:
    response = httpx.post(
        f"{stack.url}/oauth2/revoke",
        data={"token": token},
        auth=(client_id, stack.secrets[client_id]),
        timeout=10,
    )
    assert response.status_code == 200, response.text


def _refused(stack: Stack, token: str) -> bool:
    answer = httpx.get(
        f"{stack.url}/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    return answer.status_code == 401 and INVALID_TOKEN in answer.headers["www-authenticate"]


def test_a_revoked_token_is_replaced_after_the_gateway_refuses_it(
    stack: Stack, recorder: Recorder
) -> None:
    with recording_gateway(stack, "full", recorder) as gateway:
        first = gateway.token().access_token
        _revoke(stack, "full", first)  # never used: no answer of the gateway's cache applies
        assert len(gateway.sample(1, seed=3)) == 1
        second = gateway.token().access_token
    assert second != first
    assert recorder.token_requests == 2
    assert recorder.count("/vae/sample", 401) == 1  # the refused try
    assert recorder.count("/vae/sample", 200) == 1  # the retry with the new token
    assert any(INVALID_TOKEN in challenge for *_, challenge in recorder.exchanges)


def test_revoke_ends_the_token_and_the_next_call_gets_another(
    stack: Stack, recorder: Recorder
) -> None:
    with recording_gateway(stack, "full", recorder) as gateway:
        first = gateway.token().access_token
        gateway.revoke()
        assert _refused(stack, first)
        gateway.models()
        assert gateway.token().access_token != first
    assert recorder.token_requests == 2
    assert recorder.count("/v1/models", 401) == 0  # the cache was cleared: no refused try


def test_a_disabled_client_gets_one_retry_then_the_error(stack: Stack, recorder: Recorder) -> None:
    """Disabling a client revokes its tokens: the gateway refuses the cached one, the client
    asks for another once, and the token endpoint's refusal is what the caller gets."""
    stack.add_client("to-disable", "models:read")
    with recording_gateway(stack, "to-disable", recorder) as gateway:
        gateway.models()
        subprocess.run(
            [*AUTH_CLI, "--database", str(stack.database), "clients", "disable", "to-disable"],
            cwd=PROJECT_ROOT,
            check=True,
            capture_output=True,
            timeout=60,
        )
        assert gateway_answers(stack, gateway.token().access_token, 401)
        with pytest.raises(GatewayError) as caught:
            gateway.models()
    assert (caught.value.status, caught.value.error) == (401, "invalid_client")
    assert recorder.count("/v1/models", 401) == 1
    assert recorder.token_requests == 2


def test_a_token_is_replaced_before_it_expires(short_stack: Stack, recorder: Recorder) -> None:
    with recording_gateway(short_stack, "full", recorder) as gateway:
        token = gateway.token()
        assert token.expires_in == SHORT_TTL_SECONDS
        gateway.classify("Rates rise.")
        time.sleep(SHORT_TTL_SECONDS + 0.2)
        gateway.classify("Rates rise again.")
        assert gateway.token().access_token != token.access_token
    assert recorder.token_requests == 2
    assert recorder.count("/classify", 401) == 0  # replaced before use, never refused


def test_an_expired_token_the_cache_still_trusts_is_replaced_after_a_401(
    short_stack: Stack, recorder: Recorder
) -> None:
    """Clocks apart (a suspended laptop): the cache thinks the token fresh, the auth service
    has expired it; the gateway's invalid_token makes the client fetch another."""
    with recording_gateway(short_stack, "full", recorder) as gateway:
        gateway._tokens._clock = lambda: 0.0  # time stands still for the cache
        gateway.models()
        assert gateway_answers(short_stack, gateway.token().access_token, 401)
        gateway.models()
    assert recorder.token_requests == 2
    assert recorder.count("/v1/models", 401) == 1  # the recorder sees the client's only
    assert recorder.count("/v1/models", 200) == 2


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _cache(lifetime: int) -> tuple[TokenCache, FakeClock, list[Token]]:
    clock, issued = FakeClock(), []

    def fetch() -> Token:
        issued.append(Token(f"t{len(issued)}", "Bearer", lifetime, "vae"))
        return issued[-1]

    return TokenCache(fetch, clock), clock, issued


@pytest.mark.parametrize("lifetime", [2, 60, 3600])
def test_the_cache_replaces_a_token_within_its_refresh_margin(lifetime: int) -> None:
    cache, clock, issued = _cache(lifetime)
    first = cache.get()
    clock.now += lifetime - refresh_margin(lifetime) - 0.01
    assert cache.get() is first
    clock.now += 0.02
    assert cache.get() is not first
    assert len(issued) == 2


def test_the_refresh_margin_is_a_tenth_at_most_thirty_seconds() -> None:
    assert refresh_margin(2) == pytest.approx(0.2)
    assert refresh_margin(60) == pytest.approx(6)
    assert refresh_margin(3600) == 30


def test_invalidate_forgets_only_the_token_that_failed() -> None:
    cache, _, issued = _cache(3600)
    first = cache.get()
    cache.invalidate(first.access_token)
    second = cache.get()
    cache.invalidate(first.access_token)  # a second thread that saw the first token fail
    assert cache.get() is second
    assert len(issued) == 2
