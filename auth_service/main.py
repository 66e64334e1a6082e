"""The ASGI application: ``create_app(settings, clock)``.

Run it with ``python -m auth_service serve``, or under uvicorn as a factory:
``uvicorn --factory auth_service.main:create_app`` (settings then come from AUTH_* variables).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from auth_service.admin import bootstrap_client
from auth_service.clock import Clock, system_clock
from auth_service.context import AppContext
from auth_service.db import open_database
from auth_service.metrics import create_metrics
from auth_service.ratelimit import ClientAuthLimiter
from auth_service.routes import check, health, metadata, oauth
from auth_service.security import burn_verification_time, new_client_secret
from auth_service.service import AuthService
from auth_service.settings import AuthSettings
from auth_service.store import Store
from auth_service.verification import VerificationPool

logger = logging.getLogger("auth_service")


def build_context(settings: AuthSettings, clock: Clock = system_clock) -> AppContext:
    database = open_database(
        settings.database, settings.database_connections, settings.database_timeout_seconds
    )
    store = Store(database)
    limiter = ClientAuthLimiter(settings.auth_limits, clock)
    verifier = VerificationPool(
        settings.verification_worker_count, settings.max_pending_verifications
    )
    service = AuthService(
        store,
        clock,
        token_ttl_seconds=settings.token_ttl_seconds,
        realm=settings.realm,
        limiter=limiter,
        verifier=verifier,
    )
    metrics = create_metrics(verifier, limiter)
    return AppContext(settings, clock, database, store, service, verifier, metrics)


def _warm_up() -> None:
    """One hash like those of unknown client ids: the pool's threads reach their working
    memory (scrypt's 16 MiB, the malloc arena) at start, not under the first load."""
    burn_verification_time(new_client_secret())


async def _prune_periodically(context: AppContext) -> None:
    while True:
        await asyncio.sleep(context.settings.prune_interval_seconds)
        try:
            pruned = await run_in_threadpool(context.service.prune_expired_tokens)
        except Exception:
            logger.exception("pruning expired tokens failed; will retry")
        else:
            logger.debug("pruned %d expired tokens", pruned)


def _lifespan(context: AppContext) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        context.database.open()
        bootstrap_client(context.store, context.settings, context.clock)
        pruned = await run_in_threadpool(context.service.prune_expired_tokens)
        await run_in_threadpool(context.verifier.start, _warm_up)
        logger.info(
            "auth service ready database=%s pruned_expired_tokens=%d verification_workers=%d",
            context.database.description,
            pruned,
            context.verifier.workers,
        )
        pruner = asyncio.create_task(_prune_periodically(context))
        try:
            yield
        finally:
            pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruner
            context.verifier.shutdown()
            context.database.close()

    return lifespan


async def _http_error(_: Request, error: HTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
    return JSONResponse(
        {"error": code, "detail": str(error.detail)},
        status_code=error.status_code,
        headers=error.headers,
    )


async def _validation_error(_: Request, __: RequestValidationError) -> JSONResponse:
    return JSONResponse({"error": "invalid_request", "detail": "malformed request"}, 400)


async def _unexpected_error(_: Request, error: Exception) -> JSONResponse:
    logger.error("unhandled %s", type(error).__name__, exc_info=error)
    return JSONResponse({"error": "server_error", "detail": "internal error"}, 500)


def create_app(settings: AuthSettings | None = None, clock: Clock = system_clock) -> FastAPI:
    context = build_context(settings or AuthSettings(), clock)
    app = FastAPI(
        title="auth_service",
        lifespan=_lifespan(context),
        docs_url=None,
        redoc_url=None,
        # Served on the service's own socket only: the gateway routes /openapi.json to the app.
        openapi_url="/openapi.json",
    )
    app.state.context = context
    app.include_router(oauth.router)
    app.include_router(check.router)
    app.include_router(health.router)
    app.include_router(metadata.router)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
    return app
