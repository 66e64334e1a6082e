"""/healthz, /readyz and /metrics over HTTP."""

from __future__ import annotations

import re

from .conftest import Deployment
from .support import check, token_for


def _metric(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name + (f"{{{labels}}}" if labels else "")) + r" (\S+)"
    match = re.search(rf"^{pattern}$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_health_and_readiness(deployment: Deployment) -> None:
    assert deployment.http.get("/healthz").json() == {"status": "ok"}
    ready = deployment.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


def test_metrics_count_tokens_checks_and_latency(deployment: Deployment) -> None:
    before = deployment.http.get("/metrics").text

    token = token_for(deployment.http, deployment.other)
    check(deployment.http, token, "detect")
    check(deployment.http, token, "vae")
    check(deployment.http, None)
    check(deployment.http, "never-issued")
    deployment.http.post("/oauth2/token", data={"grant_type": "x"}, auth=deployment.other.basic)

    response = deployment.http.get("/metrics")
    after = response.text
    assert response.headers["content-type"].startswith("text/plain")

    def grew(name: str, labels: str = "") -> float:
        return _metric(after, name, labels) - _metric(before, name, labels)

    assert grew("auth_tokens_issued_total", 'client_id="other"') == 1
    assert grew("auth_checks_total", 'outcome="allowed"') == 1
    assert grew("auth_checks_total", 'outcome="insufficient_scope"') == 1
    assert grew("auth_checks_total", 'outcome="missing_token"') == 1
    assert grew("auth_checks_total", 'outcome="invalid_token"') == 1
    assert grew("auth_check_duration_seconds_count") == 4
    assert (
        grew(
            "auth_oauth_errors_total",
            'endpoint="token",error="unsupported_grant_type",status="400"',
        )
        == 1
    )
    assert grew("auth_oauth_request_duration_seconds_count", 'endpoint="token"') == 2
    assert token not in after


def test_metrics_include_the_process_figures(deployment: Deployment) -> None:
    text = deployment.http.get("/metrics").text
    assert _metric(text, "process_resident_memory_bytes") > 0
    assert _metric(text, "process_open_fds") > 0
    assert "python_gc_collections_total" in text
    assert "python_info{" in text
