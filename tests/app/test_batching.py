"""The micro-batcher on plain numpy functions: order, batch formation, limits and failures."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from app.batching import Batcher, BatchObserver
from app.errors import Overloaded

pytestmark = pytest.mark.anyio


class Recorder:
    """A 'model' that doubles its input and remembers the size of every batch it saw."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.batch_sizes: list[int] = []
        self.gate = gate

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if self.gate is not None:
            self.gate.wait(timeout=10)
        self.batch_sizes.append(len(batch))
        return batch * 2.0


async def test_concurrent_requests_are_batched_and_answered_in_order() -> None:
    model = Recorder()
    batcher = Batcher(model, name="double", max_batch_size=16, max_delay_ms=20)
    inputs = [np.full((1, 3), index, dtype=np.float32) for index in range(64)]
    try:
        results = await asyncio.gather(*(batcher.submit(rows) for rows in inputs))
    finally:
        await batcher.close()
    for rows, result in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(result.outputs, rows * 2.0)
    assert sum(model.batch_sizes) == 64
    assert max(model.batch_sizes) == 16, "concurrent requests share runtime calls"
    assert len(model.batch_sizes) < 64
    assert {result.batch_size for result in results} <= set(model.batch_sizes)


async def test_multi_row_requests_keep_their_rows_and_large_ones_run_alone() -> None:
    model = Recorder()
    batcher = Batcher(model, name="double", max_batch_size=8, max_delay_ms=20)
    sizes = [3, 5, 20, 2, 1]
    inputs = [
        np.arange(n * 2, dtype=np.float32).reshape(n, 2) + 100 * i for i, n in enumerate(sizes)
    ]
    try:
        results = await asyncio.gather(*(batcher.submit(rows) for rows in inputs))
    finally:
        await batcher.close()
    for rows, result in zip(inputs, results, strict=True):
        np.testing.assert_array_equal(result.outputs, rows * 2.0)
    assert 20 in model.batch_sizes, "a request above max_batch_size runs as its own batch"
    assert all(size <= 8 for size in model.batch_sizes if size != 20)


async def test_batching_off_runs_every_request_alone() -> None:
    model = Recorder()
    batcher = Batcher(model, name="double", max_batch_size=16, max_delay_ms=20, enabled=False)
    try:
        results = await asyncio.gather(
            *(batcher.submit(np.full((1, 2), i, dtype=np.float32)) for i in range(10))
        )
    finally:
        await batcher.close()
    assert model.batch_sizes == [1] * 10
    assert [float(r.outputs[0, 0]) for r in results] == [2.0 * i for i in range(10)]


async def test_a_full_queue_refuses_at_once_with_retry_after() -> None:
    gate = threading.Event()
    model = Recorder(gate)
    rejected: list[int] = []
    batcher = Batcher(
        model,
        name="slow",
        max_batch_size=1,
        max_queue_size=2,
        retry_after_s=3,
        observer=BatchObserver(on_rejected=lambda: rejected.append(1)),
    )
    one_row = np.zeros((1, 2), dtype=np.float32)
    try:
        running = asyncio.ensure_future(batcher.submit(one_row))
        await asyncio.sleep(0.05)  # the worker has taken it and is blocked inside the model
        queued = [asyncio.ensure_future(batcher.submit(one_row)) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as refused:
            await batcher.submit(one_row)
        assert refused.value.headers == {"Retry-After": "3"}
        assert refused.value.status_code == 503
        assert rejected == [1]
        gate.set()
        done = await asyncio.gather(running, *queued)
        assert len(done) == 3
    finally:
        gate.set()
        await batcher.close()


async def test_a_failing_batch_fails_its_requests_and_the_worker_goes_on() -> None:
    calls: list[int] = []

    def flaky(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("runtime exploded")
        return batch + 1

    batcher = Batcher(flaky, name="flaky", max_batch_size=4, max_delay_ms=0)
    try:
        with pytest.raises(RuntimeError, match="exploded"):
            await batcher.submit(np.zeros((1, 1), dtype=np.float32))
        result = await batcher.submit(np.zeros((1, 1), dtype=np.float32))
    finally:
        await batcher.close()
    assert float(result.outputs[0, 0]) == 1.0


async def test_observer_sees_every_batch() -> None:
    seen: list[int] = []
    batcher = Batcher(
        lambda batch: batch,
        name="identity",
        max_batch_size=4,
        max_delay_ms=10,
        observer=BatchObserver(on_batch=lambda rows, seconds: seen.append(rows)),
    )
    try:
        await asyncio.gather(*(batcher.submit(np.zeros((1, 1))) for _ in range(8)))
    finally:
        await batcher.close()
    assert sum(seen) == 8


async def test_closing_fails_waiting_and_running_requests_instead_of_hanging() -> None:
    gate = threading.Event()
    batcher = Batcher(Recorder(gate), name="closing", max_batch_size=1)
    one_row = np.zeros((1, 1), dtype=np.float32)
    running = asyncio.ensure_future(batcher.submit(one_row))
    await asyncio.sleep(0.05)
    waiting = asyncio.ensure_future(batcher.submit(one_row))
    await asyncio.sleep(0)
    await batcher.close()
    gate.set()
    for request in (running, waiting):
        with pytest.raises(Overloaded, match="shutting down"):
            await asyncio.wait_for(request, 1)


async def test_an_idle_batcher_runs_a_lone_request_without_waiting_for_company() -> None:
    model = Recorder()
    batcher = Batcher(model, name="idle", max_batch_size=8, max_delay_ms=60_000)
    try:
        # With the old fixed wait this would take a minute; an idle batcher does not wait.
        result = await asyncio.wait_for(batcher.submit(np.ones((1, 2), np.float32)), timeout=10)
        again = await asyncio.wait_for(batcher.submit(np.ones((1, 2), np.float32)), timeout=10)
    finally:
        await batcher.close()
    assert result.batch_size == again.batch_size == 1 and model.batch_sizes == [1, 1]


async def test_under_load_the_batcher_waits_to_fill_the_next_batch() -> None:
    model = Recorder()
    batcher = Batcher(model, name="loaded", max_batch_size=8, max_delay_ms=1_000)
    rows = np.ones((1, 2), np.float32)
    try:
        # Two at once: a batch with company, so the next batch may wait for more.
        await asyncio.gather(batcher.submit(rows), batcher.submit(rows))
        first = asyncio.ensure_future(batcher.submit(rows))
        await asyncio.sleep(0.1)  # far less than the 1 s the batch may wait
        second = await asyncio.wait_for(batcher.submit(rows), timeout=10)
        assert (await first).batch_size == second.batch_size == 2  # the wait joined them
    finally:
        await batcher.close()
    assert model.batch_sizes == [2, 2]


async def test_a_lone_request_on_an_idle_model_runs_on_run_alone_and_load_does_not() -> None:
    """`run_alone` (a session with more threads) takes a request that is alone with nothing
    queued behind it; batches, and a request with others waiting, run on `run`."""
    gate = threading.Event()
    shared, alone = Recorder(gate), Recorder()
    batcher = Batcher(shared, run_alone=alone, name="double", max_batch_size=4, max_delay_ms=0)
    try:
        result = await batcher.submit(np.ones((1, 2), dtype=np.float32))
        np.testing.assert_array_equal(result.outputs, np.full((1, 2), 2.0))
        assert (alone.batch_sizes, shared.batch_sizes) == ([1], [])
        # A burst: six requests queued before the worker looks; the shared 'model' holds its
        # first batch (on the gate) so that the rest wait behind it.
        burst = asyncio.gather(
            *(batcher.submit(np.zeros((1, 2), dtype=np.float32)) for _ in range(6))
        )
        await asyncio.sleep(0.05)
        gate.set()
        await burst
    finally:
        gate.set()
        await batcher.close()
    assert alone.batch_sizes == [1], "only the request that found the model idle"
    assert shared.batch_sizes == [4, 2]
