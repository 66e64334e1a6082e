"""The auth matrix at the gateway and the introspection cache (keyed on token and scope)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid

import httpx
import pytest

from tests.e2e.stack import Stack, raw_request, wait_until

pytestmark = pytest.mark.slow


def _get(stack: Stack, path: str, authorization: str | None = None) -> httpx.Response:
    request_id = uuid.uuid4().hex
    headers = {"X-Request-Id": request_id}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = httpx.get(stack.url + path, headers=headers, timeout=10)
    assert response.headers["x-request-id"] == request_id
    return response


def _assert_denied(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["www-authenticate"].startswith('Bearer realm="model-gateway"')
    assert response.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize(
    ("authorization", "error"),
    [
        (None, "missing_token"),
        ("Basic Zm9vOmJhcg==", "missing_token"),
        ("Bearer", "invalid_token"),
        ("Bearer not a token!", "invalid_token"),
        ("Bearer " + "A" * 43, "invalid_token"),
    ],
)
def test_requests_without_a_valid_token_are_401(gateway: Stack, authorization, error) -> None:
    for _ in range(2):  # the second answer may come from the cache: it must be the same
        _assert_denied(_get(gateway, "/v1/models", authorization), 401, error)


def test_missing_token_body_matches_the_auth_service(gateway: Stack) -> None:
    response = _get(gateway, "/v1/models")
    assert response.json() == {
        "error": "missing_token",
        "detail": "send the access token as Authorization: Bearer <token>",
    }
    assert response.headers["www-authenticate"] == 'Bearer realm="model-gateway"'


def test_token_in_the_query_string_is_refused_even_when_cached(gateway: Stack) -> None:
    token = gateway.token("full", "models:read")
    assert _get(gateway, "/v1/models", f"Bearer {token}").status_code == 200  # now cached
    for path in (f"/v1/models?access_token={token}", "/v1/models?x=1&access_token=abc"):
        _assert_denied(_get(gateway, path, f"Bearer {token}"), 401, "invalid_request")
    _assert_denied(_get(gateway, f"/v1/models?access_token={token}"), 401, "invalid_request")


def test_cache_key_includes_the_token(gateway: Stack) -> None:
    """With nginx's default cache key (the URL), one cached 200 would let every token in."""
    token = gateway.token("full", "models:read")
    allowed = _get(gateway, "/v1/models", f"Bearer {token}")
    assert allowed.status_code == 200
    again = _get(gateway, "/v1/models", f"Bearer {token}")
    assert again.status_code == 200
    assert gateway.access_record(again.headers["x-request-id"])["auth_cache"] == "HIT"

    # Same URL, within the cache time: other tokens are still checked, not served the 200.
    _assert_denied(_get(gateway, "/v1/models"), 401, "missing_token")
    _assert_denied(_get(gateway, "/v1/models", "Bearer " + "B" * 43), 401, "invalid_token")
    narrow = gateway.token("narrow")
    _assert_denied(_get(gateway, "/v1/models", f"Bearer {narrow}"), 403, "insufficient_scope")
    # A token that embeds the cached one does not match it either.
    _assert_denied(_get(gateway, "/v1/models", f"Bearer {token}x"), 401, "invalid_token")


def test_cache_key_includes_the_scope(gateway: Stack) -> None:
    token = gateway.token("narrow")  # detect only
    denied = _get(gateway, "/v1/models", f"Bearer {token}")
    _assert_denied(denied, 403, "insufficient_scope")
    # The same token on a route of its scope is checked for that scope (not the cached 403) ...
    response = httpx.post(
        f"{gateway.url}/detect",
        headers={"Authorization": f"Bearer {token}"},
        json={"image": "not base64"},
        timeout=30,
    )
    assert response.status_code not in (401, 403), response.text
    # ... and a token allowed for one scope is not allowed for another through the cache.
    full = gateway.token("full", "vae")
    assert _get(gateway, "/vae/sample?n=1", f"Bearer {full}").status_code == 200
    _assert_denied(_get(gateway, "/v1/models", f"Bearer {full}"), 403, "insufficient_scope")


def _revoke(stack: Stack, client_id: str, token: str) -> None:
    response = httpx.post(
        f"{stack.url}/oauth2/revoke",
        data={"token": token},
        auth=(client_id, stack.secrets[client_id]),
    )
    assert response.status_code == 200


def test_revocation_takes_effect_within_the_cache_time(gateway: Stack) -> None:
    token = gateway.token("full", "models:read")
    assert _get(gateway, "/v1/models", f"Bearer {token}").status_code == 200
    _revoke(gateway, "full", token)
    revoked_at = time.monotonic()
    # Documented: a cached answer may be served until the cache time has passed ...
    while time.monotonic() - revoked_at < gateway.cache_seconds + 1.5:
        status = _get(gateway, "/v1/models", f"Bearer {token}").status_code
        if status == 401:
            break
        assert status == 200
        time.sleep(0.2)
    # ... never longer.
    _assert_denied(_get(gateway, "/v1/models", f"Bearer {token}"), 401, "invalid_token")


def test_revoked_token_is_refused_at_once_when_not_cached(gateway: Stack) -> None:
    token = gateway.token("full", "models:read")
    _revoke(gateway, "full", token)
    _assert_denied(_get(gateway, "/v1/models", f"Bearer {token}"), 401, "invalid_token")


def test_token_endpoint_is_rate_limited(gateway: Stack) -> None:
    statuses = []
    with httpx.Client(timeout=10) as client:
        for _ in range(200):
            response = client.post(
                f"{gateway.url}/oauth2/token", data={"grant_type": "client_credentials"}
            )
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.json() == {"error": "rate_limited"}
                assert response.headers["retry-after"] == "1"
                break
    assert statuses[-1] == 429, statuses
    time.sleep(1.5)  # let the bucket refill for the other tests


def test_reload_needs_the_admin_scope(gateway: Stack) -> None:
    """Reading metadata needs models:read; a reload, which changes what serves traffic, needs
    models:admin (and models:admin alone does not read)."""
    reload_url = f"{gateway.url}/v1/models/classifier/reload"
    read = {"Authorization": f"Bearer {gateway.token('full', 'models:read')}"}
    admin = {"Authorization": f"Bearer {gateway.token('full', 'models:admin')}"}
    refused = httpx.post(reload_url, headers=read, timeout=60)
    _assert_denied(refused, 403, "insufficient_scope")
    assert 'scope="models:admin"' in refused.headers["www-authenticate"]
    assert httpx.post(reload_url, headers=admin, timeout=60).status_code == 200
    assert httpx.get(f"{gateway.url}/v1/models", headers=read, timeout=10).status_code == 200
    _assert_denied(_get(gateway, "/v1/models", admin["Authorization"]), 403, "insufficient_scope")


def test_no_live_token_in_the_auth_cache(gateway: Stack) -> None:
    """nginx writes each cache entry's key into its file: the key is a sha256 digest, so no
    file under the cache holds the token (docs/gateway.md, "Tokens at rest")."""
    token = gateway.token("full", "models:read")
    assert _get(gateway, "/v1/models", f"Bearer {token}").status_code == 200
    cache = gateway.run_dir / "nginx" / "cache" / "auth"
    digest = hashlib.sha256(f"Bearer {token}|models:read".encode()).hexdigest()

    def entries() -> list[bytes]:
        return [path.read_bytes() for path in cache.rglob("*") if path.is_file()]

    assert wait_until(lambda: any(digest.encode() in entry for entry in entries()), 5)
    assert not [entry for entry in entries() if token.encode() in entry]


@pytest.mark.parametrize("token", ["abc\x01def", "abc\x7fdef", "abc\tdef", "abc\xe9def"])
def test_control_bytes_in_the_token_are_invalid_token_not_auth_down(
    gateway: Stack, token: str
) -> None:
    errors_before = gateway.output().count("[error]")
    for _ in range(2):
        status, headers, body = raw_request(
            gateway.port, "GET /v1/models HTTP/1.1", [("Authorization", f"Bearer {token}")]
        )
        assert status == 401, body
        assert json.loads(body)["error"] == "invalid_token"
        assert 'error="invalid_token"' in headers["www-authenticate"]
    assert gateway.output().count("[error]") == errors_before  # no "auth down" in the log


@pytest.mark.parametrize("cached_first", [True, False])
def test_two_authorization_headers_are_refused_by_nginx(gateway: Stack, cached_first) -> None:
    """nginx 1.22 answers 400 to a repeated Authorization header, before any check, in either
    order and whether or not the valid token's answer is cached."""
    token = gateway.token("full", "models:read")
    assert _get(gateway, "/v1/models", f"Bearer {token}").status_code == 200  # cached now
    pair = [("Authorization", f"Bearer {token}"), ("Authorization", "Bearer " + "A" * 43)]
    status, _, body = raw_request(
        gateway.port, "GET /v1/models HTTP/1.1", pair if cached_first else pair[::-1]
    )
    assert status == 400, body
    assert json.loads(body)["error"] == "bad_request"


def test_a_scope_in_the_clients_query_string_changes_nothing(gateway: Stack) -> None:
    """The check takes a scope from its own URL too (for ingress-nginx, docs/auth.md); nginx's
    sub-request carries no query string of the client's, so a client cannot name its own."""
    token = gateway.token("narrow")  # detect only
    response = httpx.get(
        f"{gateway.url}/v1/models?scope=detect",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    _assert_denied(response, 403, "insufficient_scope")
