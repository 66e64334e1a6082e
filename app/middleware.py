"""ASGI middleware: request ids, access log and HTTP metrics; the request-body size limit."""

from __future__ import annotations

import json
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import BodyTooLarge, error_body
from app.logging import AccessRecord, begin_request, write_access_line
from app.metrics import Metrics

REQUEST_ID_HEADER = "x-request-id"
CLIENT_ID_HEADER = "x-client-id"
# Ids from the gateway are echoed and logged, so only plain tokens are taken over.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def _header(scope: Scope, name: str) -> str | None:
    raw = name.encode()
    for key, value in scope.get("headers", ()):
        if key.lower() == raw:
            return value.decode("latin-1")
    return None


def _safe_id(value: str | None) -> str | None:
    return value if value is not None and _SAFE_ID.match(value) else None


class RequestContextMiddleware:
    """Gives each request an id (the gateway's or a new one), echoes it, logs and counts it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = AccessRecord(
            request_id=_safe_id(_header(scope, REQUEST_ID_HEADER)) or uuid.uuid4().hex,
            client_id=_safe_id(_header(scope, CLIENT_ID_HEADER)),
            method=scope["method"],
            path=scope["path"],
        )
        begin_request(record)
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                headers = [
                    (key, value)
                    for key, value in message.get("headers", [])
                    if key.lower() != REQUEST_ID_HEADER.encode()
                ]
                headers.append((REQUEST_ID_HEADER.encode(), record.request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            record.status = record.status or 500
            record.latency_ms = round(seconds * 1000, 3)
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.observe_request(template, record.method, record.status, seconds)
            write_access_line(record)


class BodySizeLimitMiddleware:
    """Refuses bodies above `max_bytes` with 413: by Content-Length, and by counting the stream.

    When a streamed body crosses the limit, the 413 is sent from here and the application is
    told the client went away, so it stops reading; whatever it answers then is dropped.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, "content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, scope["path"])
            return
        received = 0
        refused = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not response_started:
                        await self._refuse(send, scope["path"])
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if refused:
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, send: Send, path: str) -> None:
        error = BodyTooLarge(f"The request body is larger than {self.max_bytes} bytes.")
        body = json.dumps(error_body(error.code, error.detail, path)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": error.status_code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
