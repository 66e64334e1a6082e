"""GET /oauth2/check: the answer to nginx's auth_request sub-request (200, 401 or 403 only)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from auth_service.context import app_context
from auth_service.service import CheckOutcome, CheckResult
from auth_service.syntax import format_scope

router = APIRouter()

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


class _ConflictingScope(ValueError):
    pass


def _required_scope(request: Request) -> str | None:
    """The route's scope: nginx sends it in X-Required-Scope; ingress-nginx's external auth
    cannot set a header without a configuration snippet, so it names the scope in the check's
    URL instead (`auth-url: .../oauth2/check?scope=classify`). Both may come, if they agree;
    two answers to one question are refused (fail closed), never one of them picked."""
    header = request.headers.getlist(SCOPE_HEADER)
    parameter = request.query_params.getlist(SCOPE_PARAMETER)
    if len(header) > 1 or len(parameter) > 1:
        raise _ConflictingScope("more than one required scope")
    given = {*header, *parameter}
    if len(given) > 1:
        raise _ConflictingScope("X-Required-Scope and the scope parameter disagree")
    return next(iter(given), None)


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


# Async on purpose: one indexed read from SQLite in WAL mode never waits for writers and costs
# less than the hop to a worker thread would.
@router.get("/oauth2/check")
async def check(request: Request) -> Response:
    context = app_context(request)
    started = time.perf_counter()
    result = _check_result(request)
    response = check_response(result, context.settings.realm)
    context.metrics.checks.labels(result.outcome.value).inc()
    context.metrics.check_seconds.observe(time.perf_counter() - started)
    return response
