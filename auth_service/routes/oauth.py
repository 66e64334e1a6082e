"""POST /oauth2/token, /oauth2/introspect and /oauth2/revoke (RFC 6749, 7662, 7009)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from auth_service import openapi
from auth_service.context import AppContext, app_context
from auth_service.db import StoreUnavailableError
from auth_service.discovery import INTROSPECTION_PATH, REVOCATION_PATH, TOKEN_PATH
from auth_service.errors import OAuthError, invalid_request, storage_unavailable
from auth_service.oauth_input import (
    MAX_BODY_BYTES,
    check_content_type,
    check_no_query_parameters,
    client_credentials,
    client_source,
    parse_form,
)
from auth_service.store import Client

router = APIRouter()
logger = logging.getLogger("auth_service")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

# What an endpoint does once its caller is authenticated; it runs in a worker thread (it reads
# and writes the database). None means an empty 200.
Action = Callable[[AppContext, Client, dict[str, str]], dict[str, Any] | None]
T = TypeVar("T")


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise invalid_request(f"the request body is larger than {MAX_BODY_BYTES} bytes", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise invalid_request(f"the request body is larger than {MAX_BODY_BYTES} bytes", 413)
    return bytes(body)


async def with_storage(step: Awaitable[T]) -> T:
    """A database that refuses (unreachable, read-only, full, pool exhausted) is a 503, not a
    500."""
    try:
        return await step
    except StoreUnavailableError as error:
        logger.error("the database refused the request: %s", error)
        raise storage_unavailable() from None


def _single_authorization(request: Request) -> str | None:
    values = request.headers.getlist("authorization")
    if len(values) > 1:
        raise invalid_request("more than one Authorization header")
    return values[0] if values else None


async def _handle(request: Request, endpoint: str, action: Action) -> Response:
    context = app_context(request)
    started = time.perf_counter()
    try:
        check_no_query_parameters(request.url.query)
        check_content_type(request.headers.get("content-type"))
        form = parse_form(await _read_body(request))
        credentials = client_credentials(
            _single_authorization(request), form, context.settings.realm
        )
        source = client_source(
            request.headers.getlist("x-real-ip"), request.client.host if request.client else None
        )
        caller = await with_storage(context.service.authenticate(credentials, source))
        body = await with_storage(run_in_threadpool(action, context, caller, form))
    except OAuthError as error:
        context.metrics.oauth_errors.labels(endpoint, error.error, str(error.status)).inc()
        return JSONResponse(
            error.body(), status_code=error.status, headers={**NO_STORE, **error.headers}
        )
    finally:
        context.metrics.oauth_seconds.labels(endpoint).observe(time.perf_counter() - started)
    if body is None:
        return Response(status_code=200, headers=NO_STORE)
    return JSONResponse(body, headers=NO_STORE)


def _issue(context: AppContext, caller: Client, form: dict[str, str]) -> dict[str, Any]:
    issued = context.service.issue_token(caller, form)
    context.metrics.tokens_issued.labels(issued.client_id).inc()
    return issued.body()


def _introspect(context: AppContext, caller: Client, form: dict[str, str]) -> dict[str, Any]:
    return context.service.introspect(caller, form)


def _revoke(context: AppContext, caller: Client, form: dict[str, str]) -> None:
    context.service.revoke(caller, form)


@router.post(TOKEN_PATH, **openapi.TOKEN)
async def token(request: Request) -> Response:
    return await _handle(request, "token", _issue)


@router.post(INTROSPECTION_PATH, **openapi.INTROSPECT)
async def introspect(request: Request) -> Response:
    return await _handle(request, "introspect", _introspect)


@router.post(REVOCATION_PATH, **openapi.REVOKE)
async def revoke(request: Request) -> Response:
    return await _handle(request, "revoke", _revoke)
