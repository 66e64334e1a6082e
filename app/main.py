"""The inference service: `create_app(settings)`, and `app` for `uvicorn app.main:app`."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.api import DESCRIPTION, TITLE, VERSION, routers
from app.errors import install_error_handlers
from app.logging import configure_logging
from app.metrics import Metrics
from app.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from app.protocol import InferenceProtocol
from app.registry import Registry
from app.settings import Settings
from app.tasks import discover
from app.workers import die_with_parent, is_worker

# Allocations between two young-generation collections (CPython's default: 700). See below.
GC_YOUNG_THRESHOLD = 50_000


def settle_heap() -> None:
    """Once the models are loaded: move every object alive now (modules, models, vocabularies)
    to the permanent generation, and collect the young one less often. A request allocates a
    few thousand short-lived objects; with the defaults the collector ran every few requests
    and now and then scanned the whole startup heap, the tail of the latency under load. The
    app alone, `POST /classify` at concurrency 32 (wrk, 5 s, two runs): p99 67-82 ms before,
    38-42 ms after, p50 and requests/s within noise (docs/benchmarks.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    metrics = Metrics()
    tasks = discover()
    registry = Registry(
        settings,
        metrics,
        companions={task.model: task.companion for task in tasks if task.companion},
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if is_worker():
            die_with_parent()
        await registry.start()
        settle_heap()
        try:
            yield
        finally:
            await registry.stop()
            metrics.close()

    app = FastAPI(
        title=TITLE,
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        # The gateway serves the docs (Swagger UI from installed assets, over one document for
        # both services: gateway/openapi.py); FastAPI's pages would load theirs from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    metrics.watch_models(registry.states, registry.refused_versions, registry.queue_capacities)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.registry = registry
    app.state.protocol = InferenceProtocol(registry, settings, VERSION)
    install_error_handlers(app)
    for router in routers(tasks):
        app.include_router(router)
    # Added last = outermost: the access log and metrics see the body limit's 413s too.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app


app = create_app()
