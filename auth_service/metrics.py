"""Prometheus metrics, in a registry per app so several apps can live in one process (tests)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from auth_service.ratelimit import ClientAuthLimiter, Limit
from auth_service.verification import VerificationPool

_LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class AuthMetrics:
    registry: CollectorRegistry
    tokens_issued: Counter
    oauth_errors: Counter
    checks: Counter
    check_seconds: Histogram
    oauth_seconds: Histogram


class _ClientAuthCollector(Collector):
    """Read at scrape time from the pool and the limiter, which keep their own counts."""

    def __init__(self, verifier: VerificationPool, limiter: ClientAuthLimiter) -> None:
        self._verifier = verifier
        self._limiter = limiter

    def collect(self) -> Iterator[Metric]:
        pool = self._verifier
        yield GaugeMetricFamily(
            "auth_secret_verification_workers", "Threads that verify client secrets", pool.workers
        )
        yield GaugeMetricFamily(
            "auth_secret_verifications_running", "Client secret verifications running", pool.running
        )
        yield GaugeMetricFamily(
            "auth_secret_verifications_waiting",
            "Client secret verifications waiting for a thread",
            pool.waiting,
        )
        yield CounterMetricFamily(
            "auth_secret_verifications_rejected",
            "Client authentications refused with 503 because the verification queue was full",
            pool.rejected,
        )
        throttled = CounterMetricFamily(
            "auth_client_auth_throttled",
            "Client authentications refused with 429, by the failure window that was full",
            labels=["limit"],
        )
        for limit in Limit:
            throttled.add_metric([limit.value], self._limiter.refused[limit])
        yield throttled


def create_metrics(
    verifier: VerificationPool | None = None, limiter: ClientAuthLimiter | None = None
) -> AuthMetrics:
    registry = CollectorRegistry()
    # The process's own figures (CPU, memory, open files, GC), as the default registry has them.
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    if verifier is not None and limiter is not None:
        registry.register(_ClientAuthCollector(verifier, limiter))
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
