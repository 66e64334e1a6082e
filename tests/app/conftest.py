"""Fixtures for the inference service: the real ASGI app, its lifespan, and an httpx client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from tests.conftest import MODELS_DIR


def model_present(name: str) -> bool:
    return any((MODELS_DIR / name).glob("*/metadata.json"))


def requires_model(name: str) -> pytest.MarkDecorator:
    """Skip route tests of a model whose directory is not in the repository yet."""
    return pytest.mark.skipif(
        not model_present(name), reason=f"models/{name}/ is not in the repository yet"
    )


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def serving(
    settings: Settings | None = None, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The app, started through its lifespan (load, verify, warm-up), and a client for it."""
    settings = settings or Settings(models_dir=MODELS_DIR, poll_interval_s=0, **overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client, app


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def app_logs() -> Iterator[list[logging.LogRecord]]:
    """Records of the `app.*` loggers (which do not propagate to the root logger)."""
    handler = _Collect()
    logger = logging.getLogger("app")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def models_root() -> Path:
    return MODELS_DIR
