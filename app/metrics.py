"""Prometheus metrics, in a registry of the app's own so that several apps can share a process.

With `APP_WORKERS` > 1, `python -m app` names a directory in `PROMETHEUS_MULTIPROC_DIR` before
the workers start: prometheus_client then keeps every value in a file per process there, and
`/metrics` (answered by whichever worker gets the scrape) adds up the files of them all.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from app.batching import BatchObserver

# The states a model can be in (app.registry.ModelState), one series each: 1 for the current.
MODEL_STATES = ("START", "LOADING", "AVAILABLE", "UNAVAILABLE")


class _ModelCollector(Collector):
    """Read at scrape time from the registry: each model's state and refused versions."""

    def __init__(
        self,
        states: Callable[[], Mapping[str, str]],
        refused: Callable[[], Mapping[str, int]],
        capacities: Callable[[], Mapping[str, int]],
    ) -> None:
        self._states = states
        self._refused = refused
        self._capacities = capacities

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "app_model_state", "1 for the state each model is in.", labels=["model", "state"]
        )
        for model, current in self._states().items():
            for name in MODEL_STATES:
                state.add_metric([model, name], 1.0 if name == current else 0.0)
        yield state
        refused = GaugeMetricFamily(
            "app_model_refused_versions",
            "Versions of each model refused (failed to load or warm up) since the start.",
            labels=["model"],
        )
        for model, count in self._refused().items():
            refused.add_metric([model], float(count))
        yield refused
        capacity = GaugeMetricFamily(
            "app_inference_queue_capacity",
            "Requests each model's queue holds before refusing with 503 (per process).",
            labels=["model"],
        )
        for model, size in self._capacities().items():
            capacity.add_metric([model], float(size))
        yield capacity


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._models: _ModelCollector | None = None
        # The process's own figures (CPU, memory, open files, GC, Python version), as the
        # default registry would have them. In multiprocess mode (APP_WORKERS > 1) they are
        # left out: prometheus_client cannot add them up across processes, and one worker's
        # would pass for the app's.
        if not os.environ.get(MULTIPROCESS_ENV):
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                self.registry.register(collector)
        self.requests = Counter(
            "app_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.request_latency = Histogram(
            "app_http_request_duration_seconds",
            "HTTP request latency by route template, method and status.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference_latency = Histogram(
            "app_inference_duration_seconds",
            "Duration of one runtime call (one batch).",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "app_inference_batch_size",
            "Rows per runtime call.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "app_inference_queue_depth",
            "Requests waiting for the model's batch worker.",
            ["model"],
            registry=self.registry,
            multiprocess_mode="livesum",  # every live worker's queue together
        )
        self.rejected = Counter(
            "app_inference_rejected",
            "Requests refused with 503 because the model's queue was full.",
            ["model"],
            registry=self.registry,
        )
        self.model_version = Gauge(
            "app_model_version",
            "The version each model is serving (0 when none).",
            ["model"],
            registry=self.registry,
            multiprocess_mode="livemax",  # workers pick a new version up within a poll
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        labels = (route, method, str(status))
        self.requests.labels(*labels).inc()
        self.request_latency.labels(*labels).observe(seconds)

    def batch_observer(self, model: str) -> BatchObserver:
        def on_batch(rows: int, seconds: float) -> None:
            self.batch_size.labels(model).observe(rows)
            self.inference_latency.labels(model).observe(seconds)

        return BatchObserver(
            on_batch=on_batch,
            on_queue_depth=self.queue_depth.labels(model).set,
            on_rejected=self.rejected.labels(model).inc,
        )

    def watch_models(
        self,
        states: Callable[[], Mapping[str, str]],
        refused: Callable[[], Mapping[str, int]],
        capacities: Callable[[], Mapping[str, int]],
    ) -> None:
        """Reports each model's state, refused versions and queue size (the registry's)."""
        self._models = _ModelCollector(states, refused, capacities)
        self.registry.register(self._models)

    def close(self) -> None:
        """At a worker's exit: its live gauges stop counting (its counters stay, as they must)."""
        directory = os.environ.get(MULTIPROCESS_ENV)
        if directory:
            mark_process_dead(os.getpid(), directory)

    def render(self) -> bytes:
        directory = os.environ.get(MULTIPROCESS_ENV)
        if directory:
            merged = CollectorRegistry()
            MultiProcessCollector(merged, path=directory)
            if self._models is not None:
                merged.register(self._models)  # every worker loads the same models
            return generate_latest(merged)
        return generate_latest(self.registry)
