"""The gateway's one API description (/openapi.json) and Swagger UI (/docs), offline.

The document is checked by openapi-spec-validator and against nginx itself: for every operation
it lists, a real request's access-log line names the scope the operation declares (or none, for
a public one); a route nginx does not pass on is not listed. Swagger UI runs in headless
chromium with nothing but the gateway to talk to: "Authorize" with a client id and secret,
then "Try it out" on POST /classify.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from openapi_spec_validator import validate

from tests.e2e.browser import screenshot
from tests.e2e.stack import Stack

SAMPLE_VALUES = {"name": "classifier", "version": "1"}


@pytest.fixture(scope="module")
def document(gateway: Stack) -> dict[str, Any]:
    response = httpx.get(f"{gateway.url}/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def test_the_served_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)  # raises with the failing part of the document


def test_it_lists_both_services_and_nothing_nginx_does_not_route(
    gateway: Stack, document: dict[str, Any]
) -> None:
    paths = set(document["paths"])
    assert {"/classify", "/detect", "/vae/sample", "/v1/models", "/v2/models/{name}/infer"} <= paths
    assert {"/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"} <= paths
    # The app serves /metrics and the auth service /oauth2/check, but not through the gateway.
    assert "/metrics" not in paths and "/oauth2/check" not in paths
    assert httpx.get(f"{gateway.url}/metrics", timeout=10).status_code == 404
    scheme = document["components"]["securitySchemes"]["oauth2"]
    flow = scheme["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/oauth2/token"
    assert {"detect", "vae", "classify", "models:read", "models:admin", "infer:*"} <= set(
        flow["scopes"]
    )


def test_every_operation_declares_the_scope_nginx_asks_for(
    gateway: Stack, document: dict[str, Any]
) -> None:
    """Each operation, sent without a token: a protected one is refused with 401 and nginx's
    log line names the declared scope; a public one is answered without any scope."""
    checked = 0
    for method, template, operation in operations(document):
        path = template.format(**SAMPLE_VALUES)
        request_id = uuid.uuid4().hex
        response = httpx.request(
            method, f"{gateway.url}{path}", headers={"X-Request-Id": request_id}, timeout=30
        )
        logged = gateway.access_record(request_id)
        declared = operation.get("x-gateway-scope")
        where = f"{method.upper()} {template}"
        if declared is None:
            assert operation["security"] in ([], [{"clientBasic": []}, {}]), where
            assert logged["required_scope"] == "", where
            assert response.status_code != 404, where
        else:
            assert response.status_code == 401, where
            assert logged["required_scope"] == declared.format(**SAMPLE_VALUES), where
            (requirement,) = operation["security"]
            scopes = requirement["oauth2"]
            assert scopes == (["infer:*"] if declared.startswith("infer:") else [declared]), where
            assert {"401", "403"} <= set(operation["responses"]), where
        checked += 1
    assert checked >= 20


def test_docs_and_assets_come_from_the_gateway_with_a_strict_policy(gateway: Stack) -> None:
    page = httpx.get(f"{gateway.url}/docs", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(source.startswith("/") for source in sources), sources
    for source in sources:
        asset = httpx.get(f"{gateway.url}{source}", timeout=10)
        assert asset.status_code == 200, source
    script = httpx.get(f"{gateway.url}/swagger-ui/swagger-ui-bundle.js", timeout=10)
    assert script.headers["content-type"].startswith("text/javascript")


def test_swagger_ui_authorizes_and_runs_classify(page: Any, gateway: Stack) -> None:
    origins: set[str] = set()
    page.on("request", lambda request: origins.add(urlsplit(request.url).netloc))
    page.goto("/docs")
    page.wait_for_selector(".opblock", timeout=30_000)

    page.click("button.authorize")
    page.fill("#client_id_clientCredentials", "full")
    page.fill("#client_secret_clientCredentials", gateway.secrets["full"])
    oauth = page.locator(".auth-container").filter(has_text="clientCredentials")
    oauth.locator("button", has_text="Authorize").click()
    oauth.locator("button", has_text="Logout").wait_for(timeout=15_000)  # a token was granted
    page.click("button.close-modal")

    operation = page.locator("#operations-classifier-classify_classify_post")
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    status.wait_for(timeout=30_000)
    assert status.inner_text().strip().startswith("200")
    body = operation.locator(".live-responses-table .response-col_description pre").first
    assert '"predictions"' in body.inner_text()
    operation.locator(".live-responses-table").scroll_into_view_if_needed()
    # The curl line Swagger UI shows carries the bearer token: masked in the picture.
    screenshot(page, "docs-swagger-classify", mask=[operation.locator(".curl-command")])

    # Offline: nothing but the gateway was asked for anything, and the token is nowhere stored.
    assert origins == {urlsplit(gateway.url).netloc}
    assert page.evaluate("window.localStorage.length + window.sessionStorage.length") == 0
    assert page.evaluate("document.cookie") == ""
