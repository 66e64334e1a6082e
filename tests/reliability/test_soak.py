"""Soak: concurrency 32 over every route for RELIABILITY_SOAK_SECONDS (default 600; CI 60).

Rule for memory (docs/reliability.md): after a warm-up of WARMUP_SECONDS that is not measured,
RSS of each program (its process tree) is sampled every second for D seconds; the window is
min(60 s, D/6) — the first and last minute of a 10-minute run, the first and last 10 s of a
60 s one — and the mean of the last window must be less than 10 % above the mean of the first.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time

from tests.e2e.stack import Stack
from tests.reliability.load import PROGRAMS, program_rss_kib, run_load

SOAK_SECONDS = float(os.environ.get("RELIABILITY_SOAK_SECONDS", "600"))
CONCURRENCY = 32
MAX_RSS_GROWTH = 0.10
# Long enough for the auth service's worker threads (up to 40), its pool of SQLite connections
# and the runtimes' memory arenas to reach their working size.
WARMUP_SECONDS = 30.0


def _sample_rss(stack: Stack, seconds: float) -> list[tuple[float, dict[str, int]]]:
    samples = []
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        samples.append((elapsed, program_rss_kib(stack)))
        time.sleep(1)
    return samples


def test_soak(stack: Stack, token: str) -> None:
    window = min(60.0, SOAK_SECONDS / 6)
    asyncio.run(run_load(stack, token, WARMUP_SECONDS, CONCURRENCY))
    samples: list[tuple[float, dict[str, int]]] = []
    sampler = threading.Thread(
        target=lambda: samples.extend(_sample_rss(stack, SOAK_SECONDS)), daemon=True
    )
    sampler.start()
    tally = asyncio.run(run_load(stack, token, SOAK_SECONDS, CONCURRENCY))
    sampler.join(30)
    print(f"soak: {tally.total} requests in {SOAK_SECONDS:.0f} s, {dict(tally.statuses)}")
    assert tally.total > SOAK_SECONDS  # the load really ran
    assert not tally.failures, tally.failures[:20]
    first = [rss for at, rss in samples if at < window]
    last = [rss for at, rss in samples if at >= SOAK_SECONDS - window]
    assert first and last
    for program in PROGRAMS:
        before = statistics.mean(rss[program] for rss in first)
        after = statistics.mean(rss[program] for rss in last)
        print(f"rss {program}: {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB")
        assert after < before * (1 + MAX_RSS_GROWTH), (program, before, after)
