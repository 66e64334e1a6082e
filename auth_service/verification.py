"""A fixed pool of threads for client-secret verification, with a bounded queue.

A scrypt verification takes a core and 16 MiB for tens of milliseconds, whether the client id
is known or not. Running them in a fixed number of threads bounds CPU and memory however many
requests arrive, and keeps the memory steady: the same few threads (and their malloc arenas)
do every hash, where the general worker pool would start and retire threads with the load.
At most ``max_pending`` verifications wait for a thread; beyond that a request is refused at
once (503), never queued: under a flood, waiting longer only makes every answer late.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from auth_service.errors import verification_busy

T = TypeVar("T")

THREAD_NAME_PREFIX = "secret-verification"
DEFAULT_MAX_PENDING = 32


def default_verification_workers() -> int:
    """One thread per core: more hashes at once than cores only add memory and latency."""
    return os.cpu_count() or 2


class VerificationPool:
    def __init__(self, workers: int, max_pending: int) -> None:
        if workers < 1 or max_pending < 0:
            raise ValueError("workers must be at least 1 and max_pending at least 0")
        self.workers = workers
        self.max_pending = max_pending
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._admitted = 0  # running or waiting for a thread
        self._running = 0
        self._rejected = 0

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return self._admitted - self._running

    @property
    def rejected(self) -> int:
        return self._rejected

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, THREAD_NAME_PREFIX)
            return self._executor

    def start(self, warm_up: Callable[[], object] | None = None) -> None:
        """Start every thread now, each running warm_up once (e.g. one hash), so the service
        reaches its working memory at start rather than under its first load."""
        executor = self._pool()
        # Each job waits for all the others, so each one runs on a thread of its own.
        everyone = threading.Barrier(self.workers)

        def one() -> None:
            everyone.wait()
            if warm_up is not None:
                warm_up()

        for job in [executor.submit(one) for _ in range(self.workers)]:
            job.result()

    async def run(self, work: Callable[[], T]) -> T:
        """work() on a pool thread; raises verification_busy() at once if the queue is full.

        A request that is cancelled while it waits does not cancel work(): once admitted, a
        verification always runs to its end (the failure limits depend on its verdict), and
        its place is given back only then.
        """
        with self._lock:
            if self._admitted >= self.workers + self.max_pending:
                self._rejected += 1
                raise verification_busy()
            self._admitted += 1
        try:
            future = self._pool().submit(self._counted, work)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(self._released)
        return await asyncio.shield(asyncio.wrap_future(future))

    def _counted(self, work: Callable[[], T]) -> T:
        with self._lock:
            self._running += 1
        try:
            return work()
        finally:
            with self._lock:
                self._running -= 1

    def _release(self) -> None:
        with self._lock:
            self._admitted -= 1

    def _released(self, _: Future[object]) -> None:
        self._release()

    def shutdown(self) -> None:
        """Finish what is running, drop what waits, and stop the threads (at exit)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
