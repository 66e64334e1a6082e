"""Dynamic micro-batching, as TF Serving, Triton and BentoML do it.

Callers `await batcher.submit(rows)` with an array whose first axis holds one or more rows.
A single worker task takes the first waiting request and everything queued behind it, up to
`max_batch_size` rows; only when the previous batch had company (more than one request: there
is load) does it also wait up to `max_delay_ms` for more. An idle server thus runs a lone
request at once, with no batching tax, while under load requests gather during the running
batch and the wait fills the next one. It concatenates the rows, makes one runtime call in its
own thread and hands every caller its own slice of the output (of each output, when the
runtime gives a list of them), in order. A request larger than `max_batch_size` runs alone.
The queue is bounded: when it is full `submit` raises `Overloaded` at once instead of letting
latency grow without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from app.errors import Overloaded

logger = logging.getLogger("app.batching")

Outputs = np.ndarray | list[np.ndarray]  # one output, or a model's every output in order
RunBatch = Callable[[np.ndarray], Outputs]


@dataclass
class BatchedResult:
    outputs: Outputs  # the caller's rows of what `run` returned
    batch_size: int  # rows in the runtime call that produced these outputs


def _rows(outputs: Outputs, start: int, stop: int) -> Outputs:
    if isinstance(outputs, list):
        return [output[start:stop] for output in outputs]
    return outputs[start:stop]


@dataclass
class BatchObserver:
    """Hooks for metrics; the defaults do nothing."""

    on_batch: Callable[[int, float], None] = lambda rows, seconds: None
    on_queue_depth: Callable[[int], None] = lambda depth: None
    on_rejected: Callable[[], None] = lambda: None


@dataclass
class _Request:
    rows: np.ndarray
    future: asyncio.Future[BatchedResult]
    enqueued: float = field(default_factory=time.perf_counter)

    @property
    def size(self) -> int:
        return len(self.rows)


class Batcher:
    def __init__(
        self,
        run: RunBatch,
        *,
        run_alone: RunBatch | None = None,
        name: str,
        max_batch_size: int = 32,
        max_delay_ms: float = 2.0,
        max_queue_size: int = 256,
        enabled: bool = True,
        retry_after_s: int = 1,
        observer: BatchObserver | None = None,
    ) -> None:
        self.name = name
        self._run = run
        self._run_alone = run_alone or run
        self.max_batch_size = max_batch_size if enabled else 1
        self.max_delay_s = max_delay_ms / 1000 if enabled else 0.0
        self._last_batch_requests = 0  # in the previous runtime call: >1 means there is load
        self.max_queue_size = max_queue_size
        self._retry_after_s = retry_after_s
        self._observer = observer or BatchObserver()
        self._queue: asyncio.Queue[_Request] = asyncio.Queue(maxsize=max_queue_size)
        self._carried: _Request | None = None  # taken from the queue but did not fit the batch
        # One thread per model: ONNX Runtime releases the GIL and parallelises inside a call,
        # so more threads would only fight over the same cores.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{name}")
        self._worker: asyncio.Task[None] | None = None
        self._running: list[_Request] = []  # the batch inside the runtime right now

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize() + (self._carried is not None)

    def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(
                self._work(), name=f"batcher-{self.name}"
            )

    async def close(self) -> None:
        """Stop the worker; requests still queued fail with Overloaded so callers can retry."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        pending = [*self._running, *([self._carried] if self._carried else [])]
        self._running, self._carried = [], None
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        for request in pending:
            if not request.future.done():
                request.future.set_exception(self._overloaded("is shutting down"))
        self._executor.shutdown(wait=False)

    async def submit(self, rows: np.ndarray) -> BatchedResult:
        self.start()
        request = _Request(rows, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(request)
        except asyncio.QueueFull:
            self._observer.on_rejected()
            raise self._overloaded("has a full queue") from None
        self._observer.on_queue_depth(self.queue_depth)
        return await request.future

    def _overloaded(self, reason: str) -> Overloaded:
        return Overloaded(
            f"Model '{self.name}' {reason}; retry after {self._retry_after_s} s.",
            headers={"Retry-After": str(self._retry_after_s)},
        )

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            self._observer.on_queue_depth(self.queue_depth)
            live = [request for request in batch if not request.future.done()]
            if not live:
                continue
            self._running = live
            self._last_batch_requests = len(live)
            inputs = live[0].rows if len(live) == 1 else np.concatenate([r.rows for r in live])
            # A lone request with nothing queued behind it: the server is idle, and `run_alone`
            # (a session with more threads, when configured) may take the idle cores.
            run = self._run_alone if len(live) == 1 and self._queue.empty() else self._run
            started = time.perf_counter()
            try:
                outputs = await loop.run_in_executor(self._executor, run, inputs)
            except Exception as exc:
                logger.exception("model %s failed on a batch of %d rows", self.name, len(inputs))
                for request in live:
                    if not request.future.done():
                        request.future.set_exception(exc)
                self._running = []
                continue
            # Not in a `finally`: when close() cancels the worker mid-batch it fails these.
            self._running = []
            self._observer.on_batch(len(inputs), time.perf_counter() - started)
            offset = 0
            for request in live:
                if not request.future.done():
                    result = _rows(outputs, offset, offset + request.size)
                    request.future.set_result(BatchedResult(result, len(inputs)))
                offset += request.size

    async def _collect(self) -> list[_Request]:
        if self._carried is not None:
            first, self._carried = self._carried, None
        else:
            first = await self._queue.get()
        batch, rows = [first], first.size
        # No load (the previous batch ran alone): take only what is queued, wait for nothing.
        wait = self.max_delay_s if self._last_batch_requests > 1 else 0.0
        deadline = time.perf_counter() + wait
        while rows < self.max_batch_size:
            try:
                request = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    request = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if rows + request.size > self.max_batch_size:
                self._carried = request
                break
            batch.append(request)
            rows += request.size
        return batch
