"""Throttling of repeated failed client authentication, per presented client id, in memory."""

from __future__ import annotations

import threading
from collections import OrderedDict, deque

from auth_service.clock import Clock


class FailureLimiter:
    """Refuses a key after max_failures failures within window_seconds (a sliding window).

    State lives in this process only: a restart forgets it, which is acceptable because the
    service runs as a single process and the window is short. At most max_tracked keys are kept
    (least recently failed first out), so a flood of made-up client ids can't exhaust memory.
    """

    def __init__(
        self, max_failures: int, window_seconds: float, clock: Clock, max_tracked: int = 10_000
    ) -> None:
        self._max_failures = max_failures
        self._window = window_seconds
        self._clock = clock
        self._max_tracked = max_tracked
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    def retry_after(self, key: str) -> float | None:
        """Seconds until key may try again, or None if it may try now."""
        with self._lock:
            now = self._clock()
            times = self._recent(key, now)
            if times is None or len(times) < self._max_failures:
                return None
            return max(times[0] + self._window - now, 0.0)

    def record_failure(self, key: str) -> None:
        with self._lock:
            now = self._clock()
            times = self._recent(key, now) or deque(maxlen=self._max_failures)
            times.append(now)
            self._failures[key] = times
            self._failures.move_to_end(key)
            while len(self._failures) > self._max_tracked:
                self._failures.popitem(last=False)

    def record_success(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
