"""The client-credentials token cache: one token shared by every call and thread.

A token is fetched on first use and kept until shortly before it expires (``refresh_margin``:
a tenth of its lifetime, at most 30 s), so a request never leaves with a token that runs out in
flight. The gateway may still refuse a cached token (revoked, the auth service's database
replaced, clocks apart): the client then calls ``invalidate`` with the token that failed and
asks again, and only the first of several threads that saw the same failure fetches anew.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from mgw._types import Token

__all__ = ["TokenCache"]

MAX_REFRESH_MARGIN_SECONDS = 30.0
REFRESH_MARGIN_FRACTION = 0.1


def refresh_margin(expires_in: float) -> float:
    """How long before its expiry a token is replaced: long enough for a slow request to
    arrive with it valid, short enough that a token of a few seconds still gets used."""
    return min(MAX_REFRESH_MARGIN_SECONDS, expires_in * REFRESH_MARGIN_FRACTION)


class TokenCache:
    """Holds the current token; ``fetch`` is called (under a lock) when there is none fit to
    use, so concurrent callers wait for one token request instead of each sending their own."""

    def __init__(
        self, fetch: Callable[[], Token], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._refresh_at = 0.0

    def get(self) -> Token:
        """The cached token, or a new one when there is none or it is about to expire."""
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                self._store(self._fetch_now())
            assert self._token is not None
            return self._token

    def _fetch_now(self) -> tuple[Token, float]:
        asked = self._clock()  # the lifetime counts from the request, not the answer
        return self._fetch(), asked

    def _store(self, fetched: tuple[Token, float]) -> None:
        token, asked = fetched
        self._token = token
        self._refresh_at = asked + token.expires_in - refresh_margin(token.expires_in)

    def invalidate(self, access_token: str) -> None:
        """Forgets ``access_token`` if it is still the cached one (a thread that comes second
        keeps the token the first one already fetched in its place)."""
        with self._lock:
            if self._token is not None and self._token.access_token == access_token:
                self._token = None

    def clear(self) -> None:
        with self._lock:
            self._token = None

    @property
    def current(self) -> Token | None:
        """The cached token without fetching (None when there is none)."""
        with self._lock:
            return self._token
