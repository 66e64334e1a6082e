"""Throttling of failed client authentication, in memory (docs/auth.md#security-decisions).

Three sliding windows bound guessing without letting a stranger lock a client out:

- per (client id, source address): the tight limit, the one a single guesser meets;
- per source address, over all client ids: one address spraying many ids;
- per client id, over all addresses: distributed guessing. A source that authenticated as that
  client recently ("known-good") is exempt from this one and from the per-source one, so
  attackers elsewhere can exhaust it without locking the client's owner out.

Every attempt takes a place in its windows *before* its secret is verified (pending), and
becomes a failure or is let go when the verdict is in. A window whose failures and pending
attempts together fill it admits no more, so concurrent guesses cannot all pass the check
before any of them is counted; one whose failures alone fill it refuses (429).
"""

from __future__ import annotations

import enum
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Hashable
from dataclasses import dataclass

from auth_service.clock import Clock
from auth_service.source import SourceAddress

DEFAULT_MAX_TRACKED = 10_000


class FailureLimiter:
    """Refuses a key after max_failures failures within window_seconds (a sliding window).

    State lives in this process only: a restart forgets it, which is acceptable because the
    service runs as a single process and the window is short. At most max_tracked keys are kept
    (least recently failed first out), so a flood of made-up client ids can't exhaust memory.
    """

    def __init__(
        self,
        max_failures: int,
        window_seconds: float,
        clock: Clock,
        max_tracked: int = DEFAULT_MAX_TRACKED,
    ) -> None:
        self._max_failures = max_failures
        self._window = window_seconds
        self._clock = clock
        self._max_tracked = max_tracked
        self._failures: OrderedDict[Hashable, deque[float]] = OrderedDict()
        self._pending: Counter[Hashable] = Counter()  # attempts being verified, by key
        self._lock = threading.Lock()

    def _recent(self, key: Hashable, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: Hashable) -> float | None:
        """Seconds until key may try again, or None if it may try now."""
        with self._lock:
            now = self._clock()
            times = self._recent(key, now)
            if times is None or len(times) < self._max_failures:
                return None
            return max(times[0] + self._window - now, 0.0)

    def record_failure(self, key: Hashable) -> None:
        with self._lock:
            now = self._clock()
            times = self._recent(key, now) or deque(maxlen=self._max_failures)
            times.append(now)
            self._failures[key] = times
            self._failures.move_to_end(key)
            while len(self._failures) > self._max_tracked:
                self._failures.popitem(last=False)

    def has_room(self, key: Hashable) -> bool:
        """Whether one more attempt fits beside the failures and the attempts in flight."""
        with self._lock:
            times = self._recent(key, self._clock())
            return len(times or ()) + self._pending[key] < self._max_failures

    def begin(self, key: Hashable) -> None:
        with self._lock:
            self._pending[key] += 1

    def end(self, key: Hashable) -> None:
        with self._lock:
            self._pending[key] -= 1
            if self._pending[key] <= 0:
                del self._pending[key]

    def record_success(self, key: Hashable) -> None:
        with self._lock:
            self._failures.pop(key, None)


class Limit(enum.Enum):
    """Which window refused an attempt (a metric label and a log field)."""

    CLIENT_AND_SOURCE = "client_and_source"
    SOURCE = "source"
    CLIENT = "client"


@dataclass(frozen=True)
class AuthLimits:
    per_client_and_source: int = 5
    per_source: int = 20
    per_client: int = 50
    window_seconds: float = 60.0
    known_good_seconds: float = 24 * 3600.0


@dataclass(frozen=True)
class Attempt:
    """An admitted attempt, pending in its windows until failed(), succeeded() or cancel()."""

    client_id: str
    source: SourceAddress
    known_good: bool


@dataclass(frozen=True)
class Refusal:
    """Failures fill a window: refuse (429) for retry_after seconds."""

    retry_after: float
    limit: Limit


@dataclass(frozen=True)
class Wait:
    """Attempts in flight fill a window: ask again once one of them is resolved."""

    limit: Limit


class ClientAuthLimiter:
    def __init__(
        self, limits: AuthLimits, clock: Clock, max_tracked: int = DEFAULT_MAX_TRACKED
    ) -> None:
        window = limits.window_seconds
        self._limits = limits
        self._clock = clock
        self._max_tracked = max_tracked
        self._by_pair = FailureLimiter(limits.per_client_and_source, window, clock, max_tracked)
        self._by_source = FailureLimiter(limits.per_source, window, clock, max_tracked)
        self._by_client = FailureLimiter(limits.per_client, window, clock, max_tracked)
        # (client id, source key) -> until when that source counts as known-good for the client
        self._known_good: OrderedDict[tuple[str, str], float] = OrderedDict()
        self.refused: Counter[Limit] = Counter()  # refusals by window, for /metrics
        # One lock around check-then-count: two threads can't both take the last free place.
        self._lock = threading.Lock()

    def _windows(
        self, client_id: str, source: SourceAddress, known_good: bool
    ) -> list[tuple[FailureLimiter, Hashable, Limit]]:
        windows: list[tuple[FailureLimiter, Hashable, Limit]] = [
            (self._by_pair, (client_id, source.key), Limit.CLIENT_AND_SOURCE)
        ]
        if not known_good:
            windows.append((self._by_source, source.key, Limit.SOURCE))
            windows.append((self._by_client, client_id, Limit.CLIENT))
        return windows

    def _is_known_good(self, pair: tuple[str, str], now: float) -> bool:
        until = self._known_good.get(pair)
        if until is None:
            return False
        if until <= now:
            del self._known_good[pair]
            return False
        return True

    def reserve(self, client_id: str, source: SourceAddress) -> Attempt | Refusal | Wait:
        """Admit an attempt before its secret is verified, or say why not."""
        with self._lock:
            known_good = self._is_known_good((client_id, source.key), self._clock())
            windows = self._windows(client_id, source, known_good)
            waits = [
                (wait, limit)
                for limiter, key, limit in windows
                if (wait := limiter.retry_after(key)) is not None
            ]
            if waits:
                wait, limit = max(waits, key=lambda item: item[0])
                self.refused[limit] += 1
                return Refusal(wait, limit)
            for limiter, key, limit in windows:
                if not limiter.has_room(key):
                    return Wait(limit)
            for limiter, key, _ in windows:
                limiter.begin(key)
        return Attempt(client_id, source, known_good)

    def _end(self, attempt: Attempt) -> list[tuple[FailureLimiter, Hashable, Limit]]:
        windows = self._windows(attempt.client_id, attempt.source, attempt.known_good)
        for limiter, key, _ in windows:
            limiter.end(key)
        return windows

    def cancel(self, attempt: Attempt) -> None:
        """The attempt was never verified (no place in the verification queue)."""
        with self._lock:
            self._end(attempt)

    def failed(self, attempt: Attempt) -> None:
        with self._lock:
            for limiter, key, _ in self._end(attempt):
                limiter.record_failure(key)

    def succeeded(self, attempt: Attempt) -> None:
        """The secret was right: clear the pair's failures (whoever is there knows the secret)
        and remember the source as known-good. The per-source and per-client failures stay,
        so a client's owner logging in does not wipe the evidence of someone else guessing."""
        pair = (attempt.client_id, attempt.source.key)
        with self._lock:
            self._end(attempt)
            self._by_pair.record_success(pair)
            self._known_good[pair] = self._clock() + self._limits.known_good_seconds
            self._known_good.move_to_end(pair)
            while len(self._known_good) > self._max_tracked:
                self._known_good.popitem(last=False)
