"""GET /oauth2/check over HTTP: what nginx's auth_request sees (200, 401 or 403 only)."""

from __future__ import annotations

import httpx
import pytest

from .conftest import Deployment
from .support import check, token_for


def _challenge(response: httpx.Response) -> str:
    return response.headers["www-authenticate"]


def test_a_valid_token_with_the_scope_passes_with_identity_headers(deployment: Deployment) -> None:
    token = token_for(deployment.http, deployment.reader)

    response = check(deployment.http, token, "classify")

    assert response.status_code == 200
    assert response.headers["x-client-id"] == "reader"
    assert response.headers["x-scopes"] == "classify detect"
    assert response.json() == {"client_id": "reader", "scope": "classify detect"}


def test_several_required_scopes_must_all_be_granted(deployment: Deployment) -> None:
    token = token_for(deployment.http, deployment.reader)
    assert check(deployment.http, token, "detect classify").status_code == 200
    assert check(deployment.http, token, "detect vae").status_code == 403


def test_the_bootstrap_client_has_every_gateway_scope(deployment: Deployment) -> None:
    token = token_for(deployment.http, deployment.bootstrap)
    for scope in ("detect", "vae", "classify", "models:read", "infer:vae", "infer:detector"):
        response = check(deployment.http, token, scope)
        assert response.status_code == 200, scope
        assert response.headers["x-client-id"] == "bootstrap"


def test_no_token_is_401_without_an_error_code(deployment: Deployment) -> None:
    """RFC 6750 §3.1: no error attribute when the request carried no credentials."""
    response = check(deployment.http, None)
    assert response.status_code == 401
    assert _challenge(response) == 'Bearer realm="model-gateway"'
    assert response.json()["error"] == "missing_token"
    assert response.json()["detail"]


def test_another_authentication_scheme_counts_as_no_token(deployment: Deployment) -> None:
    response = deployment.http.get(
        "/oauth2/check",
        headers={"Authorization": "Basic cmVhZGVyOnNlY3JldA==", "X-Required-Scope": "detect"},
    )
    assert response.status_code == 401
    assert "error=" not in _challenge(response)


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Bearer not a token",
        "Bearer tok\u00e9n",
        "Bearer " + "a" * 600,
        "Bearer ===",
        "Bearer never-issued-token",
    ],
)
def test_malformed_or_unknown_tokens_are_invalid_token(
    deployment: Deployment, authorization: str
) -> None:
    response = deployment.http.get(
        "/oauth2/check",
        headers={"Authorization": authorization.encode(), "X-Required-Scope": "detect"},
    )
    assert response.status_code == 401
    assert _challenge(response).startswith('Bearer realm="model-gateway", error="invalid_token"')
    assert response.json()["error"] == "invalid_token"


def test_a_revoked_token_is_invalid_at_once(deployment: Deployment) -> None:
    token = token_for(deployment.http, deployment.other)
    assert check(deployment.http, token).status_code == 200
    deployment.http.post("/oauth2/revoke", data={"token": token}, auth=deployment.other.basic)

    response = check(deployment.http, token)

    assert response.status_code == 401
    assert response.json() == {"error": "invalid_token", "detail": "the token has been revoked"}


def test_a_missing_scope_is_403_insufficient_scope(deployment: Deployment) -> None:
    token = token_for(deployment.http, deployment.other)

    response = check(deployment.http, token, "vae")

    assert response.status_code == 403
    assert _challenge(response) == (
        'Bearer realm="model-gateway", error="insufficient_scope",'
        ' error_description="the token lacks the scope vae", scope="vae"'
    )
    assert response.json()["error"] == "insufficient_scope"


@pytest.mark.parametrize("scope_header", [None, "", "bad\u00e9"])
def test_a_route_without_a_valid_required_scope_is_denied(
    deployment: Deployment, scope_header: str | None
) -> None:
    """Fail closed: a gateway route that forgot X-Required-Scope lets nobody through."""
    token = token_for(deployment.http, deployment.bootstrap)
    headers = {"Authorization": f"Bearer {token}"}
    if scope_header is not None:
        headers["X-Required-Scope"] = scope_header.encode()
    response = deployment.http.get("/oauth2/check", headers=headers)
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"


def test_the_scope_may_come_as_a_query_parameter(deployment: Deployment) -> None:
    """ingress-nginx's external auth names the scope in the check's URL (auth-url), since it
    cannot add a header without a configuration snippet."""
    token = token_for(deployment.http, deployment.reader)
    headers = {"Authorization": f"Bearer {token}"}
    allowed = deployment.http.get("/oauth2/check?scope=classify", headers=headers)
    assert allowed.status_code == 200
    assert allowed.headers["x-client-id"] == "reader"
    refused = deployment.http.get("/oauth2/check?scope=vae", headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"
    both = deployment.http.get(
        "/oauth2/check?scope=detect", headers={**headers, "X-Required-Scope": "detect"}
    )
    assert both.status_code == 200  # the same answer twice is one answer


@pytest.mark.parametrize(
    ("method", "expected"),
    [("GET", 200), ("HEAD", 200), ("POST", 403), ("DELETE", 403), (None, 403)],
)
def test_a_write_scope_is_required_unless_the_original_method_only_reads(
    deployment: Deployment, method: str | None, expected: int
) -> None:
    """ingress-nginx: /v1/models needs models:read to read and models:admin to change what
    serves; without the original method the check asks for the stronger scope."""
    token = token_for(deployment.http, deployment.reader)  # holds detect and classify, not vae
    headers = {"Authorization": f"Bearer {token}"}
    if method is not None:
        headers["X-Original-Method"] = method
    response = deployment.http.get("/oauth2/check?scope=classify&write_scope=vae", headers=headers)
    assert response.status_code == expected
    if expected == 403:
        assert 'scope="vae"' in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/oauth2/check?write_scope=detect", {}),  # no read scope beside it
        ("/oauth2/check?write_scope=detect", {"X-Required-Scope": "detect"}),
        ("/oauth2/check?scope=classify&write_scope=detect&write_scope=vae", {}),
        (
            "/oauth2/check?scope=classify&write_scope=detect",
            {"X-Required-Scope": "classify"},
        ),
    ],
)
def test_a_write_scope_out_of_place_is_refused(
    deployment: Deployment, url: str, headers: dict[str, str]
) -> None:
    token = token_for(deployment.http, deployment.reader)
    response = deployment.http.get(
        url, headers={"Authorization": f"Bearer {token}", "X-Original-Method": "GET", **headers}
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("url", "scope_header"),
    [
        ("/oauth2/check?scope=detect", "vae"),  # disagree
        ("/oauth2/check?scope=vae", "detect"),  # the held scope either way round
        ("/oauth2/check?scope=detect&scope=classify", None),
        ("/oauth2/check?scope=detect&scope=detect", None),
    ],
)
def test_two_answers_to_the_required_scope_are_refused(
    deployment: Deployment, url: str, scope_header: str | None
) -> None:
    """Fail closed: neither of two scopes is picked, whichever the token holds."""
    token = token_for(deployment.http, deployment.reader)
    headers = {"Authorization": f"Bearer {token}"}
    if scope_header is not None:
        headers["X-Required-Scope"] = scope_header
    response = deployment.http.get(url, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("url", "original_uri"),
    [
        ("/oauth2/check?access_token={token}", None),
        ("/oauth2/check", "/v1/detect?access_token={token}"),
        ("/oauth2/check", "/v1/detect?x=1&access_token="),
    ],
)
def test_tokens_in_query_strings_are_refused(
    deployment: Deployment, url: str, original_uri: str | None
) -> None:
    token = token_for(deployment.http, deployment.reader)
    headers = {"Authorization": f"Bearer {token}", "X-Required-Scope": "detect"}
    if original_uri:
        headers["X-Original-URI"] = original_uri.format(token=token)
    response = deployment.http.get(url.format(token=token), headers=headers)
    assert response.status_code == 401
    assert 'error="invalid_request"' in _challenge(response)


def test_an_original_uri_without_a_token_is_fine(deployment: Deployment) -> None:
    token = token_for(deployment.http, deployment.reader)
    response = deployment.http.get(
        "/oauth2/check",
        headers={
            "Authorization": f"Bearer {token}",
            "X-Required-Scope": "detect",
            "X-Original-URI": "/v1/detect?threshold=0.5",
            "X-Original-Method": "POST",
        },
    )
    assert response.status_code == 200


def test_two_authorization_headers_are_refused(deployment: Deployment) -> None:
    token = token_for(deployment.http, deployment.reader)
    headers = [("Authorization", f"Bearer {token}")] * 2 + [("X-Required-Scope", "detect")]
    response = deployment.http.get("/oauth2/check", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_request"


def test_the_scheme_name_is_case_insensitive(deployment: Deployment) -> None:
    token = token_for(deployment.http, deployment.reader)
    response = deployment.http.get(
        "/oauth2/check", headers={"Authorization": f"bearer {token}", "X-Required-Scope": "detect"}
    )
    assert response.status_code == 200


def test_garbage_never_produces_anything_but_401_or_403(deployment: Deployment) -> None:
    values = ["", "Bearer", "Bearer  a", "Bearer\ta", "x" * 7000, "Bearer \u2603", ":", "\\"]
    for authorization in values:
        for scope in ("detect", "", "\u2603", "a" * 2000):
            response = deployment.http.get(
                "/oauth2/check",
                headers={
                    "Authorization": authorization.encode(),
                    "X-Required-Scope": scope.encode(),
                },
            )
            assert response.status_code in (401, 403), (authorization, scope, response.text)
            assert response.json()["error"]
