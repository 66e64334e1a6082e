"""Token flow, every route with the right and a wrong scope, identity and request ids."""

from __future__ import annotations

import base64
import io
import uuid

import httpx
import pytest
from PIL import Image

from tests.e2e.stack import PROJECT_ROOT, Stack

pytestmark = pytest.mark.slow


def _png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 120, 40)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# (method, path, scope, request body)
ROUTES = [
    ("POST", "/detect", "detect", {"image": _png()}),
    ("GET", "/vae/sample?n=2&seed=1", "vae", None),
    ("POST", "/vae/decode", "vae", {"latents": [[0.0, 0.0]]}),
    ("POST", "/classify", "classify", {"text": "The striker scored twice in the cup final."}),
    ("GET", "/v1/models", "models:read", None),
    ("GET", "/v1/models/classifier", "models:read", None),
]


def _call(stack: Stack, method: str, path: str, token: str | None, body=None, **headers: str):
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.request(method, stack.url + path, json=body, headers=headers, timeout=30)


def test_token_endpoint_is_proxied(gateway: Stack) -> None:
    response = httpx.post(
        f"{gateway.url}/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "detect"},
        auth=("full", gateway.secrets["full"]),
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "detect"
    assert response.headers["cache-control"] == "no-store"
    assert "x-request-id" in response.headers


@pytest.mark.parametrize(("method", "path", "scope", "body"), ROUTES)
def test_route_with_the_right_scope(gateway: Stack, method, path, scope, body) -> None:
    if path == "/detect" and not (PROJECT_ROOT / "models" / "detector").is_dir():
        pytest.skip("no detector model in the repository")
    response = _call(gateway, method, path, gateway.token("full", scope), body)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("method", "path", "scope", "body"), ROUTES)
def test_route_with_a_wrong_scope(gateway: Stack, method, path, scope, body) -> None:
    other = "classify" if scope != "classify" else "vae"
    response = _call(gateway, method, path, gateway.token("full", other), body)
    assert response.status_code == 403
    assert response.json() == {
        "error": "insufficient_scope",
        "detail": f"the token lacks the scope {scope}",
    }
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert f'scope="{scope}"' in challenge


def test_identity_headers_come_from_the_check(gateway: Stack) -> None:
    token = gateway.token("narrow")
    request_id = f"spoof-{uuid.uuid4().hex}"
    response = _call(
        gateway,
        "GET",
        "/v1/models",
        token,
        **{"X-Client-Id": "full", "X-Scopes": "models:read", "X-Request-Id": request_id},
    )
    # The spoofed scope does not open the route: the check decides, on the token.
    assert response.status_code == 403
    body = {"text": "Markets fell sharply after the announcement."}
    response = _call(
        gateway,
        "POST",
        "/classify",
        gateway.token("full", "classify"),
        body,
        **{"X-Client-Id": "narrow", "X-Scopes": "detect", "X-Request-Id": request_id + "-2"},
    )
    assert response.status_code == 200
    # The app logged the identity nginx set, not the one the client sent.
    app_lines = gateway.lines_with(request_id + "-2", '"path": "/classify"')
    assert app_lines and '"client_id": "full"' in app_lines[-1], app_lines


def test_request_id_is_generated_or_kept(gateway: Stack) -> None:
    token = gateway.token("full", "models:read")
    generated = _call(gateway, "GET", "/v1/models", token)
    assert len(generated.headers.get_list("x-request-id")) == 1
    assert len(generated.headers["x-request-id"]) == 32
    kept = _call(gateway, "GET", "/v1/models", token, **{"X-Request-Id": "abc-123"})
    assert kept.headers["x-request-id"] == "abc-123"
    bad = _call(gateway, "GET", "/v1/models", token, **{"X-Request-Id": "a b<script>"})
    assert bad.headers["x-request-id"] != "a b<script>"
    record = gateway.access_record("abc-123")
    assert record["client_id"] == "full"
    assert record["status"] == 200
    assert record["upstream_time"] not in ("", "-")


def test_public_routes(gateway: Stack) -> None:
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{gateway.url}/readyz").status_code == 200
    assert httpx.get(f"{gateway.url}/openapi.json").json()["paths"]
    assert httpx.get(f"{gateway.url}/docs").status_code == 200
    missing = httpx.get(f"{gateway.url}/nowhere")
    assert (missing.status_code, missing.json()) == (404, {"error": "not_found"})
    assert "nginx/" not in httpx.get(f"{gateway.url}/healthz").headers.get("server", "")


def test_large_body_is_413(gateway: Stack) -> None:
    token = gateway.token("full", "detect")
    response = httpx.post(
        f"{gateway.url}/detect",
        content=b"x" * (11 * 1024 * 1024),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "image/png"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json() == {"error": "request_too_large"}
