"""The inference service: `create_app(settings)`, and `app` for `uvicorn app.main:app`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.errors import install_error_handlers
from app.logging import configure_logging
from app.metrics import Metrics
from app.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from app.protocol import InferenceProtocol
from app.registry import Registry
from app.routes import health, models, v2
from app.settings import Settings
from app.tasks import discover

VERSION = "0.1.0"
DESCRIPTION = """
Serves the versioned models of `models/` through ONNX Runtime (or TensorFlow, per model):
object detection, VAE sampling and news classification, with dynamic micro-batching; and
every model through the Open Inference Protocol (`/v2`, KServe v2 with Triton's binary data).
It sits behind the gateway, which authenticates every call; errors are
`{"error": "<code>", "detail": "<sentence>"}`.
"""


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
        await registry.start()
        try:
            yield
        finally:
            await registry.stop()

    app = FastAPI(
        title="Inference service",
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.registry = registry
    app.state.protocol = InferenceProtocol(registry, settings, VERSION)
    install_error_handlers(app)
    for router in (*(task.router for task in tasks), models.router, v2.router, health.router):
        app.include_router(router)
    # Added last = outermost: the access log and metrics see the body limit's 413s too.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app


app = create_app()
