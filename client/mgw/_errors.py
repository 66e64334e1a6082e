"""The one exception the client raises, and how a gateway answer becomes one.

The gateway has three error shapes, and a caller should not have to know which part of the
stack answered: the app and nginx say ``{"error": code, "detail": sentence}`` (nginx sometimes
``{"error": code}`` alone), the OAuth2 endpoints say RFC 6749's ``{"error", "error_description"}``
and the Open Inference Protocol routes say ``{"error": sentence, "code": code}``. All three
become ``GatewayError(status, error, detail)`` with ``error`` always the machine-readable code.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx

__all__ = ["GatewayError"]


class GatewayError(Exception):
    """The gateway refused a request, or could not be reached.

    Attributes:
        status: the HTTP status, or ``None`` when no answer came (connection refused, timeout).
        error: the gateway's machine-readable code (``insufficient_scope``, ``invalid_client``,
            ``empty_text``, ...); ``connection_error`` or ``timeout`` when no answer came.
        detail: the gateway's sentence saying what to change (may be empty).
        retry_after: seconds to wait before trying again, from ``Retry-After`` (429 and 503).
        request_id: the gateway's ``X-Request-Id``, to find the request in its logs.
    """

    def __init__(
        self,
        status: int | None,
        error: str,
        detail: str = "",
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        self.status = status
        self.error = error
        self.detail = detail
        self.retry_after = retry_after
        self.request_id = request_id
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.status} {self.error}" if self.status is not None else self.error
        return f"{where}: {self.detail}" if self.detail else where

    def __repr__(self) -> str:
        return (
            f"GatewayError(status={self.status!r}, error={self.error!r}, "
            f"detail={self.detail!r}, retry_after={self.retry_after!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:  # picklable, e.g. across multiprocessing
        return (
            GatewayError,
            (self.status, self.error, self.detail, self.retry_after, self.request_id),
        )


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def error_from_response(response: httpx.Response) -> GatewayError:
    """The ``GatewayError`` an error answer stands for, whichever component produced it."""
    error, detail = f"http_{response.status_code}", ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        if isinstance(body.get("code"), str):  # /v2: {"error": sentence, "code": code}
            error, detail = body["code"], body["error"]
        else:
            error = body["error"]
            described = body.get("detail", body.get("error_description", ""))
            detail = described if isinstance(described, str) else str(described)
    elif response.text:
        detail = response.text.strip()[:200]
    return GatewayError(
        response.status_code,
        error,
        detail,
        parse_retry_after(response.headers.get("retry-after")),
        response.headers.get("x-request-id"),
    )


def error_from_transport(exc: httpx.TransportError, url: str) -> GatewayError:
    """A network failure as a ``GatewayError`` without a status: one type for callers to catch."""
    kind = "timeout" if isinstance(exc, httpx.TimeoutException) else "connection_error"
    reason = str(exc) or type(exc).__name__
    return GatewayError(None, kind, f"{url}: {reason}")
