"""GET /oauth2/check: the answer to nginx's auth_request sub-request (200, 401 or 403 only)."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from auth_service.context import app_context
from auth_service.db import StoreUnavailableError, run_io
from auth_service.service import CheckOutcome, CheckResult
from auth_service.syntax import format_scope

router = APIRouter()
logger = logging.getLogger("auth_service")

# The checks counter's outcome label when the store could not answer.
UNAVAILABLE = "unavailable"

# nginx's auth_request understands only 2xx, 401 and 403, so every refusal is one of those.
_STATUS = {
    CheckOutcome.ALLOWED: 200,
    CheckOutcome.MISSING_TOKEN: 401,
    CheckOutcome.INVALID_TOKEN: 401,
    CheckOutcome.INVALID_REQUEST: 401,
    CheckOutcome.INSUFFICIENT_SCOPE: 403,
}


def _www_authenticate(result: CheckResult, realm: str) -> str:
    """RFC 6750 §3: no error attribute when the request carried no bearer token at all."""
    parts = [f'Bearer realm="{realm}"']
    if result.outcome is not CheckOutcome.MISSING_TOKEN:
        parts.append(f'error="{result.outcome.value}"')
        parts.append(f'error_description="{result.detail}"')
    if result.outcome is CheckOutcome.INSUFFICIENT_SCOPE and result.required_scopes:
        parts.append(f'scope="{format_scope(result.required_scopes)}"')
    return ", ".join(parts)


def check_response(result: CheckResult, realm: str) -> Response:
    if result.outcome is CheckOutcome.ALLOWED:
        scope = format_scope(result.scopes)
        return JSONResponse(
            {"client_id": result.client_id, "scope": scope},
            headers={
                "X-Client-Id": result.client_id,
                "X-Scopes": scope,
                "Cache-Control": "no-store",
            },
        )
    return JSONResponse(
        {"error": result.outcome.value, "detail": result.detail},
        status_code=_STATUS[result.outcome],
        headers={"WWW-Authenticate": _www_authenticate(result, realm), "Cache-Control": "no-store"},
    )


SCOPE_HEADER = "x-required-scope"
SCOPE_PARAMETER = "scope"
WRITE_SCOPE_PARAMETER = "write_scope"
# ingress-nginx's external auth sends the original request's method in this header.
ORIGINAL_METHOD_HEADER = "x-original-method"
READ_METHODS = frozenset({"GET", "HEAD"})


class _ConflictingScope(ValueError):
    pass


def _one(values: list[str], name: str) -> str | None:
    if len(values) > 1:
        raise _ConflictingScope(f"more than one {name}")
    return values[0] if values else None


def _required_scope(request: Request) -> str | None:
    """The route's scope: nginx sends it in X-Required-Scope; ingress-nginx's external auth
    cannot set a header without a configuration snippet, so it names the scope in the check's
    URL instead (`auth-url: .../oauth2/check?scope=classify`). Both may come, if they agree;
    two answers to one question are refused (fail closed), never one of them picked.

    A route whose scope depends on the method, as /v1/models does (models:read to read,
    models:admin for anything else), adds ``write_scope``: it is the one required unless
    X-Original-Method (which ingress-nginx always sends) says GET or HEAD, so a check that
    cannot tell the method asks for the stronger scope."""
    header = _one(request.headers.getlist(SCOPE_HEADER), "required scope")
    parameter = _one(request.query_params.getlist(SCOPE_PARAMETER), "required scope")
    write_scope = _one(request.query_params.getlist(WRITE_SCOPE_PARAMETER), WRITE_SCOPE_PARAMETER)
    if header is not None and parameter is not None and header != parameter:
        raise _ConflictingScope("X-Required-Scope and the scope parameter disagree")
    if write_scope is None:
        return header if header is not None else parameter
    if parameter is None or header is not None:
        raise _ConflictingScope("write_scope goes with the scope parameter only")
    method = _one(request.headers.getlist(ORIGINAL_METHOD_HEADER), "X-Original-Method")
    return parameter if method in READ_METHODS else write_scope


def _check_result(request: Request) -> CheckResult:
    headers = request.headers
    authorizations = headers.getlist("authorization")
    if len(authorizations) > 1:
        return CheckResult(CheckOutcome.INVALID_REQUEST, "more than one Authorization header")
    try:
        required_scope = _required_scope(request)
    except _ConflictingScope as error:
        return CheckResult(CheckOutcome.INVALID_REQUEST, str(error))
    query = request.scope["query_string"].decode("latin-1")
    return app_context(request).service.check(
        authorizations[0] if authorizations else None,
        required_scope,
        uris=(f"?{query}" if query else None, headers.get("x-original-uri")),
    )


def _unavailable(error: StoreUnavailableError) -> Response:
    """The store cannot answer: a 503, which nginx (any 5xx from the check) and ingress-nginx
    turn into a refusal, never an admission; the gateway says auth_unavailable."""
    logger.error("token check: the database is unavailable: %s", error)
    return JSONResponse(
        {"error": "temporarily_unavailable", "detail": "the token database is unavailable"},
        status_code=503,
        headers={"Retry-After": "1", "Cache-Control": "no-store"},
    )


# Async on purpose: with SQLite in WAL mode, one indexed read never waits for writers and costs
# less than the hop to a worker thread would; with PostgreSQL, run_io makes that hop.
@router.get("/oauth2/check")
async def check(request: Request) -> Response:
    context = app_context(request)
    started = time.perf_counter()
    try:
        result = await run_io(context.database, _check_result, request)
    except StoreUnavailableError as error:
        context.metrics.checks.labels(UNAVAILABLE).inc()
        return _unavailable(error)
    response = check_response(result, context.settings.realm)
    context.metrics.checks.labels(result.outcome.value).inc()
    context.metrics.check_seconds.observe(time.perf_counter() - started)
    return response
