"""One exception hierarchy for the service and the handlers that turn it into JSON answers.

Every error answer is `{"error": "<code>", "detail": "<human sentence>"}`. Client mistakes get
a 4xx with a sentence saying what to change; nothing a client sends produces a 500 or a trace.
Under `/v2` (the Open Inference Protocol) the protocol's own shape wins, because its clients
show `error` as the message: `{"error": "<human sentence>", "code": "<code>"}`.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

logger = logging.getLogger("app.errors")


class AppError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_media_type"


class CorruptImage(AppError):
    status_code = 422
    code = "corrupt_image"


class ImageTooLarge(AppError):
    status_code = 413
    code = "image_too_large"


class BodyTooLarge(AppError):
    status_code = 413
    code = "body_too_large"


class InvalidInput(AppError):
    status_code = 422
    code = "invalid_input"


class EmptyText(AppError):
    status_code = 422
    code = "empty_text"


class TextTooLong(AppError):
    status_code = 413
    code = "text_too_long"


class BadInferenceRequest(AppError):
    """An Open Inference Protocol request that does not fit the model or the protocol: 400, as
    the protocol and Triton answer it."""

    status_code = 400
    code = "invalid_inference_request"


class VersionNotFound(AppError):
    status_code = 404
    code = "version_not_found"


class ModelNotFound(AppError):
    status_code = 404
    code = "model_not_found"


class ModelUnavailable(AppError):
    status_code = 503
    code = "model_unavailable"


class Overloaded(AppError):
    status_code = 503
    code = "overloaded"


class VersionRefused(AppError):
    status_code = 409
    code = "version_refused"


PROTOCOL_PREFIX = "/v2"


def error_body(code: str, detail: str, path: str = "") -> dict[str, str]:
    """The JSON of an error answer on `path`: the protocol's shape under /v2, else ours."""
    if path == PROTOCOL_PREFIX or path.startswith(PROTOCOL_PREFIX + "/"):
        return {"error": detail, "code": code}
    return {"error": code, "detail": detail}


def error_response(
    status_code: int,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
    request: Request | None = None,
) -> JSONResponse:
    body = error_body(code, detail, request.url.path if request is not None else "")
    return JSONResponse(body, status_code=status_code, headers=headers)


def describe_validation_errors(errors: list[dict[str, Any]]) -> str:
    """Pydantic's error list as one sentence: where each problem is and what is wrong."""
    sentences = []
    for error in errors[:5]:
        location = [str(part) for part in error.get("loc", ())]
        if location and location[0] in ("body", "query", "path", "header"):
            where = f"{location[0]} field '{'.'.join(location[1:])}'" if location[1:] else "body"
        else:
            where = ".".join(location) or "request"
        sentences.append(f"{where}: {error.get('msg', 'invalid value')}")
    return "; ".join(sentences) + "."


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return error_response(exc.status_code, exc.code, exc.detail, exc.headers, request)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = describe_validation_errors(list(exc.errors()))
    return error_response(422, "invalid_request", detail, request=request)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:
        # FastAPI's answer to a body it cannot parse at all (JSON that is not UTF-8, a broken
        # multipart stream): invalid JSON is 422 invalid_request like every other bad body.
        return error_response(
            422, "invalid_request", "The request body cannot be parsed; send UTF-8 JSON.",
            request=request,
        )  # fmt: skip
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 404:
        detail = f"There is no route {request.method} {request.url.path}."
    return error_response(exc.status_code, code, detail, getattr(exc, "headers", None), request)


async def _client_disconnect(request: Request, exc: Exception) -> JSONResponse:
    # The body-limit middleware cuts oversized bodies this way and has already sent its 413.
    detail = "The request body was not received."
    return error_response(400, "client_disconnected", detail, request=request)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    detail = "The server failed to handle this request."
    return error_response(500, "internal_error", detail, request=request)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnect)
    app.add_exception_handler(Exception, _unexpected_error)
