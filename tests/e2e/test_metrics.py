"""The internal metrics listener (GATEWAY_METRICS_LISTEN, docs/gateway.md "Metrics"): the app's,
the auth service's and nginx's own figures on a port of their own, none on the public one."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.e2e.stack import Stack, is_listening, tree_rss_kib
from tests.harness import wait_until

pytestmark = pytest.mark.slow


def scrape(stack: Stack, target: str) -> str:
    response = httpx.get(f"{stack.metrics_url}/metrics/{target}", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def value(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"no {name} in the scrape"
    return float(match.group(1))


def test_the_app_and_the_auth_service_are_scraped_on_the_metrics_port(gateway: Stack) -> None:
    app = scrape(gateway, "app")
    assert "app_http_requests_total" in app
    assert 'app_model_state{model="classifier",state="AVAILABLE"} 1.0' in app
    assert value(app, "process_resident_memory_bytes") > 0
    auth = scrape(gateway, "auth")
    assert "auth_checks_total" in auth
    assert value(auth, "process_resident_memory_bytes") > 0
    # Two programs, two processes: the figures are each one's own (RSS as /proc says).
    for text, program in ((app, "app"), (auth, "auth")):
        rss = tree_rss_kib(gateway.pid_of(program)) * 1024
        assert 0.5 * rss < value(text, "process_resident_memory_bytes") < 1.5 * rss, program


def test_nginx_counts_answers_by_status_scope_and_auth_cache(gateway: Stack) -> None:
    """gateway/access_metrics.py counts nginx's access log: each protected request by status
    and scope, and how the auth cache served it."""
    token = gateway.token("full")
    headers = {"Authorization": f"Bearer {token}"}

    def counts() -> dict[str, float]:
        text = scrape(gateway, "nginx")
        assert value(text, "nginx_access_metrics_up") == 1
        names = {
            "ok": 'nginx_http_responses_total{code="200",scope="classify"}',
            "refused": 'nginx_http_responses_total{code="401",scope="classify"}',
            "public": 'nginx_http_responses_total{code="200",scope="-"}',
            "hit": 'nginx_auth_cache_total{result="HIT"}',
            "miss": 'nginx_auth_cache_total{result="MISS"}',
        }
        found = {}
        for key, name in names.items():
            match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
            found[key] = float(match.group(1)) if match else 0.0
        return found

    before = counts()
    body = {"text": "the striker scored twice"}
    for _ in range(3):  # one miss, then hits within the cache time
        assert httpx.post(f"{gateway.url}/classify", json=body, headers=headers).status_code == 200
    assert httpx.post(f"{gateway.url}/classify", json=body).status_code == 401
    assert httpx.get(f"{gateway.url}/healthz").status_code == 200
    expected = {"ok": 3, "refused": 1, "public": 1}
    # Datagrams arrive after the answers: wait for them.
    assert wait_until(lambda: all(counts()[k] - before[k] >= n for k, n in expected.items()), 5)
    grown = {k: v - before[k] for k, v in counts().items()}
    assert {k: grown[k] for k in expected} == expected
    # The token's first check is a miss, its next two are hits (the token is new); the
    # token-less request's check may or may not be in the cache's count (hit, miss, or none).
    assert grown["hit"] >= 2 and grown["miss"] >= 1
    assert 3 <= grown["hit"] + grown["miss"] <= 4


def test_nginx_counts_requests_and_connections(gateway: Stack) -> None:
    before = scrape(gateway, "nginx")
    for _ in range(3):
        httpx.get(f"{gateway.url}/healthz", timeout=10)
    after = scrape(gateway, "nginx")
    assert value(after, "nginx_up") == 1
    # Three requests on the public port and the two scrapes themselves (sub-requests are not
    # counted).
    assert (
        value(after, "nginx_http_requests_total") - value(before, "nginx_http_requests_total") >= 4
    )
    assert value(after, "nginx_connections_accepted_total") >= value(
        before, "nginx_connections_accepted_total"
    )
    assert value(after, "nginx_connections_active") >= 1  # this scrape's own
    for name in ("reading", "writing", "waiting"):
        assert value(after, f"nginx_connections_{name}") >= 0
    assert "# TYPE nginx_http_requests_total counter" in after


def test_the_public_port_serves_no_metrics(gateway: Stack) -> None:
    for path in ("/metrics", "/metrics/app", "/metrics/auth", "/metrics/nginx", "/_stub_status"):
        response = httpx.get(f"{gateway.url}{path}", timeout=10)
        assert response.status_code == 404, path
    # And the metrics port serves nothing else (no model route, no token endpoint).
    for path in ("/classify", "/oauth2/token", "/metrics", "/_stub_status"):
        assert httpx.get(f"{gateway.metrics_url}{path}", timeout=10).status_code == 404, path


def test_the_listener_is_on_loopback_by_default(gateway: Stack) -> None:
    listen = gateway.env()["GATEWAY_METRICS_LISTEN"]
    assert listen.startswith("127.0.0.1:")
    assert is_listening(gateway.metrics_port)
