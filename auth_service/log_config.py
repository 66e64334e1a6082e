"""Logging for ``serve``: plain lines on stderr, and access lines without query strings.

Nothing this service logs contains a secret or a token: the service's own messages name client
ids only, and the access log (off by default) drops query strings, the one place a careless
client could put credentials that the service would otherwise echo.
"""

from __future__ import annotations

import logging
from typing import Any

_PATH_ARG = 2  # uvicorn's access record args: client, method, path with query, version, status


class RedactQueryString(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > _PATH_ARG and isinstance(args[_PATH_ARG], str):
            path, question_mark, _ = args[_PATH_ARG].partition("?")
            redacted = f"{path}?[redacted]" if question_mark else path
            record.args = (*args[:_PATH_ARG], redacted, *args[_PATH_ARG + 1 :])
        return True


def logging_config(level: str) -> dict[str, Any]:
    """A logging.config.dictConfig for uvicorn's log_config."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact_query": {"()": RedactQueryString}},
        "formatters": {
            "default": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
            "access": {
                "()": "uvicorn.logging.AccessFormatter",
                "fmt": "%(asctime)s INFO access: %(client_addr)s"
                ' "%(request_line)s" %(status_code)s',
                "use_colors": False,
            },
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "access",
                "filters": ["redact_query"],
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
            "auth_service": {"handlers": ["default"], "level": level, "propagate": False},
        },
    }
