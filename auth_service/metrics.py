"""Prometheus metrics, in a registry per app so several apps can live in one process (tests)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

_LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class AuthMetrics:
    registry: CollectorRegistry
    tokens_issued: Counter
    oauth_errors: Counter
    checks: Counter
    check_seconds: Histogram
    oauth_seconds: Histogram


def create_metrics() -> AuthMetrics:
    registry = CollectorRegistry()
    return AuthMetrics(
        registry=registry,
        tokens_issued=Counter(
            "auth_tokens_issued", "Access tokens issued", ["client_id"], registry=registry
        ),
        oauth_errors=Counter(
            "auth_oauth_errors",
            "OAuth endpoint error responses by endpoint, RFC error code and status",
            ["endpoint", "error", "status"],
            registry=registry,
        ),
        checks=Counter("auth_checks", "Gateway checks by outcome", ["outcome"], registry=registry),
        check_seconds=Histogram(
            "auth_check_duration_seconds",
            "Time to answer a gateway check",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        ),
        oauth_seconds=Histogram(
            "auth_oauth_request_duration_seconds",
            "Time to answer an OAuth endpoint request",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        ),
    )
