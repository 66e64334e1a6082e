"""OAuth 2.0 error responses (RFC 6749 §5.2) as exceptions the routes turn into JSON."""

from __future__ import annotations

import math


class OAuthError(Exception):
    """An RFC 6749 §5.2 error: ``{"error": ..., "error_description": ...}`` with a status."""

    def __init__(
        self,
        error: str,
        description: str,
        status: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def invalid_request(description: str, status: int = 400) -> OAuthError:
    return OAuthError("invalid_request", description, status)


def invalid_client(description: str, realm: str) -> OAuthError:
    return OAuthError(
        "invalid_client", description, 401, {"WWW-Authenticate": f'Basic realm="{realm}"'}
    )


def throttled(retry_after_seconds: float) -> OAuthError:
    """Refusal after too many recent failed authentications (HTTP 429, docs/auth.md).

    One text for every limit: which window is full (this address, this client) is the
    operator's business (log and metrics), not a guesser's.
    """
    seconds = max(1, math.ceil(retry_after_seconds))
    return OAuthError(
        "invalid_client",
        f"too many failed client authentications; retry in {seconds} s",
        429,
        {"Retry-After": str(seconds)},
    )


def verification_busy() -> OAuthError:
    """Every secret-verification thread is busy and the queue is full: 503 at once, no wait.

    RFC 6749 §4.1.2.1 names temporarily_unavailable for a server that is overloaded.
    """
    return OAuthError(
        "temporarily_unavailable",
        "too many client authentications in progress; retry later",
        503,
        {"Retry-After": "1"},
    )


def not_permitted(description: str) -> OAuthError:
    """The client authenticated but may not do this (introspect, revoke another's token)."""
    return OAuthError("unauthorized_client", description, 403)


def storage_unavailable() -> OAuthError:
    """The database refused a write (read-only file, full disk): 503, the client may retry."""
    return OAuthError(
        "temporarily_unavailable",
        "the token database cannot be written; retry later",
        503,
        {"Retry-After": "1"},
    )
