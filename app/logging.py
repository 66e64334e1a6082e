"""JSON log lines: one access line per request, and the service's own events.

The access line holds time, request id, client id, method, path, status, latency and, when a
model answered, its name, version and the size of the batch the request ran in. It never holds
a body, a query string, a header value other than the two ids, or a token.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

ACCESS_LOGGER = "app.access"

# Fields a log call may add with `extra=`; everything else in a LogRecord is the logging machinery.
_EXTRA_FIELDS = ("model", "version", "error")


@dataclass
class AccessRecord:
    request_id: str
    client_id: str | None
    method: str
    path: str
    status: int | None = None
    latency_ms: float | None = None
    model: str | None = None
    version: int | None = None
    batch_size: int | None = None


_current: ContextVar[AccessRecord | None] = ContextVar("access_record", default=None)


def begin_request(record: AccessRecord) -> None:
    _current.set(record)


def note_inference(model: str, version: int, batch_size: int) -> None:
    """Attach the model that answered to the current request's access line."""
    record = _current.get()
    if record is not None:
        record.model, record.version, record.batch_size = model, version, batch_size


_access_logger = logging.getLogger(ACCESS_LOGGER)


def write_access_line(record: AccessRecord) -> None:
    # A shallow copy of the fields (all plain values): dataclasses.asdict recurses and deep-
    # copies, a measurable share of the access line's cost on the hot path (bench/profile.py).
    _access_logger.info("request", extra={"access": dict(vars(record))})


def _timestamp(created: float) -> str:
    return dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        access = getattr(record, "access", None)
        if access is not None:
            return json.dumps({"time": _timestamp(record.created), **access})
        line: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _EXTRA_FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


def configure_logging(level: str = "INFO") -> None:
    """Send the `app.*` loggers to stderr as JSON lines (once, however many apps are built)."""
    logger = logging.getLogger("app")
    logger.setLevel(level.upper())
    if not any(getattr(handler, "_app_json", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._app_json = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
