"""Client authentication: failure limits first, then scrypt in the verification pool.

The order is what bounds an attacker's cost: a refused attempt (429) costs no hash; an admitted
one holds its place in the failure windows from before its hash starts until its verdict, so
concurrent guesses can't overtake the count; and a full verification queue answers 503 at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial

from auth_service.db import run_io
from auth_service.errors import OAuthError, invalid_client, throttled, verification_busy
from auth_service.oauth_input import ClientCredentials
from auth_service.ratelimit import Attempt, ClientAuthLimiter, Refusal, Wait
from auth_service.security import burn_verification_time, verify_secret
from auth_service.source import SourceAddress
from auth_service.store import Client, Store
from auth_service.verification import VerificationPool

logger = logging.getLogger("auth_service")

# How long a request may wait for attempts in flight (same client and address, or same address)
# to be decided before its own is admitted. Only a client with the right secret is ever let in
# this way (wrong guesses fill the window with failures, and the waiters get 429), so the wait
# is its own burst going through the pool a few at a time: it can take seconds on a busy host,
# and a 503 then would refuse a legitimate client. Below nginx's 60 s proxy timeout.
MAX_ADMISSION_WAIT_SECONDS = 30.0


class ClientAuthenticator:
    def __init__(
        self, store: Store, limiter: ClientAuthLimiter, verifier: VerificationPool, realm: str
    ) -> None:
        self._store = store
        self._limiter = limiter
        self._verifier = verifier
        self._realm = realm
        # Set, and replaced, each time an attempt is decided: wakes the requests that wait.
        self._decided: asyncio.Event | None = None

    async def authenticate(
        self, credentials: ClientCredentials | None, source: SourceAddress
    ) -> Client:
        if credentials is None:
            raise invalid_client("client authentication is required", self._realm)
        client_id = credentials.client_id
        # One indexed read: on the event loop with SQLite (WAL: reads never wait), in a worker
        # thread with PostgreSQL (db.run_io).
        client = await run_io(self._store.database, self._store.get_client, client_id)
        # A presented id is logged only if it is registered: a confused client may send its secret.
        logged_id = "<unknown>" if client is None else client.client_id
        admitted = await self._admit(client_id, source)
        if isinstance(admitted, Refusal):
            logger.warning(
                "client authentication throttled client_id=%s source=%s limit=%s",
                logged_id,
                source,
                admitted.limit.value,
            )
            raise throttled(admitted.retry_after)
        loop = asyncio.get_running_loop()
        try:
            authenticated = await self._verifier.run(
                partial(self._verify, credentials, client, admitted, loop)
            )
        except OAuthError:
            self._limiter.cancel(admitted)  # no place in the queue: nothing was tried
            self._wake()
            raise
        if client is None or not authenticated:
            logger.warning("client authentication failed client_id=%s source=%s", logged_id, source)
            raise invalid_client("client authentication failed", self._realm)
        return client

    async def _admit(self, client_id: str, source: SourceAddress) -> Attempt | Refusal:
        """An admitted attempt or a refusal; waits while attempts in flight fill a window."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MAX_ADMISSION_WAIT_SECONDS
        while True:
            # Taken before asking, so a decision in between is not missed.
            decided = self._decided_event()
            admitted = self._limiter.reserve(client_id, source)
            if not isinstance(admitted, Wait):
                return admitted
            try:
                await asyncio.wait_for(decided.wait(), deadline - loop.time())
            except TimeoutError:
                raise verification_busy() from None

    def _decided_event(self) -> asyncio.Event:
        if self._decided is None:
            self._decided = asyncio.Event()
        return self._decided

    def _wake(self) -> None:
        """On the event loop: wake every waiting request; each asks the limiter again."""
        decided, self._decided = self._decided, None
        if decided is not None:
            decided.set()

    def _verify(
        self,
        credentials: ClientCredentials,
        client: Client | None,
        attempt: Attempt,
        loop: asyncio.AbstractEventLoop,
    ) -> bool:
        """On a pool thread. The verdict reaches the limiter here, even if the request that
        waits for it has gone (VerificationPool.run never cancels an admitted verification)."""
        authenticated = False
        try:
            if client is None:
                # What a real verification costs, so unknown ids can't be told apart by timing.
                burn_verification_time(credentials.client_secret)
            else:
                authenticated = (
                    verify_secret(credentials.client_secret, client.secret_hash)
                    and not client.disabled
                )
        finally:
            if authenticated:
                self._limiter.succeeded(attempt)
            else:
                self._limiter.failed(attempt)
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
                loop.call_soon_threadsafe(self._wake)
        return authenticated
