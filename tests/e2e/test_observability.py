"""deploy/observability/: the scrape configuration, the alert rules and the Grafana dashboard
name only what a live stack exports, on the paths its metrics listener serves."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
import yaml

from tests.e2e.stack import PROJECT_ROOT, Stack

pytestmark = pytest.mark.slow

OBSERVABILITY = PROJECT_ROOT / "deploy" / "observability"
# A metric of the stack's, as PromQL names it (label names and values never start so).
METRIC = re.compile(r"\b((?:app|auth|nginx|process|python)_[a-z0-9_]+)\b")
JOB = re.compile(r'job="([^"]+)"')
# The series of a metric family of each type, in the text format prometheus_client writes.
SERIES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
}


def load(name: str) -> Any:
    path = OBSERVABILITY / name
    return (
        json.loads(path.read_text()) if name.endswith(".json") else yaml.safe_load(path.read_text())
    )


@pytest.fixture(scope="module")
def jobs() -> dict[str, str]:
    """job name -> metrics path, from the scrape configuration."""
    config = load("prometheus.yml")
    assert (OBSERVABILITY / config["rule_files"][0]).is_file()
    return {job["job_name"]: job["metrics_path"] for job in config["scrape_configs"]}


@pytest.fixture(scope="module")
def exported(gateway: Stack, jobs: dict[str, str]) -> set[str]:
    """Every metric name the stack exports after some traffic, over each job's path on the
    metrics port: the samples' names, and the series a declared family will have (a labelled
    metric shows only its # TYPE line until its first sample)."""
    token = gateway.token("full")
    httpx.post(
        f"{gateway.url}/classify",
        json={"text": "The striker scored twice."},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ).raise_for_status()
    names: set[str] = set()
    for path in jobs.values():
        response = httpx.get(f"{gateway.metrics_url}{path}", timeout=10)
        assert response.status_code == 200, path
        for line in response.text.splitlines():
            if line.startswith("# TYPE "):
                _, _, family, kind = line.split(" ", 3)
                names |= {family, *(family + suffix for suffix in SERIES.get(kind, ()))}
            elif line and not line.startswith("#"):
                names.add(line.split("{")[0].split(" ")[0])
    return names


def expressions_of_rules() -> list[str]:
    return [rule["expr"] for group in load("alerts.yml")["groups"] for rule in group["rules"]]


def expressions_of_dashboard() -> list[str]:
    return [
        target["expr"]
        for panel in load("grafana-dashboard.json")["panels"]
        for target in panel["targets"]
    ]


def test_every_job_scrapes_a_path_the_listener_serves(
    jobs: dict[str, str], exported: set[str]
) -> None:
    assert set(jobs.values()) == {"/metrics/app", "/metrics/auth", "/metrics/nginx"}
    assert {"app_http_requests_total", "auth_checks_total", "nginx_http_requests_total"} <= exported


@pytest.mark.parametrize("source", ["alerts.yml", "grafana-dashboard.json"])
def test_every_metric_named_exists_in_a_live_scrape(
    source: str, jobs: dict[str, str], exported: set[str]
) -> None:
    expressions = expressions_of_rules() if source == "alerts.yml" else expressions_of_dashboard()
    assert expressions
    for expression in expressions:
        named = set(METRIC.findall(expression))
        assert named or "up{" in expression, expression
        assert named <= exported, (expression, named - exported)
        assert set(JOB.findall(expression)) <= set(jobs), expression


def test_the_alerts_cover_what_an_operator_is_paged_for() -> None:
    names = {rule["alert"] for group in load("alerts.yml")["groups"] for rule in group["rules"]}
    assert {
        "GatewayAuthUnavailable",
        "GatewayHighErrorRate",
        "GatewayHighLatency",
        "GatewayBatchQueueNearlyFull",
        "GatewayModelVersionRefused",
    } <= names


def test_the_service_monitor_scrapes_the_same_paths_as_the_same_jobs(jobs: dict[str, str]) -> None:
    monitor = load("servicemonitor.yaml")
    assert monitor["kind"] == "ServiceMonitor"
    scraped = {
        endpoint["relabelings"][0]["replacement"]: endpoint["path"]
        for endpoint in monitor["spec"]["endpoints"]
    }
    assert scraped == jobs
