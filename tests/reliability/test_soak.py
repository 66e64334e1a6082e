"""Soak: concurrency 32 over every route for RELIABILITY_SOAK_SECONDS (default 600; CI 60).

Rule for memory (docs/reliability.md): after a warm-up of WARMUP_SECONDS that is not measured,
RSS of each program (its process tree) is sampled four times a second for D seconds; the window
is min(60 s, D/6) — the first and last minute of a 10-minute run, the first and last 10 s of a
60 s one — and the lowest RSS of the last window must be less than 10 % above the lowest of the
first. The lowest, not the mean: a leak raises the floor, while the auth service's scrypt
hashes (16 MiB each, up to two at a time) move its RSS by up to 32 MiB from one sample to the
next, which made the means of two 10 s windows differ by 20 % with no leak at all.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import threading
import time

from tests.e2e.stack import Stack
from tests.reliability.load import PROGRAMS, program_pids, program_rss_kib, run_load

SOAK_SECONDS = float(os.environ.get("RELIABILITY_SOAK_SECONDS", "600"))
CONCURRENCY = 32
MAX_RSS_GROWTH = 0.10
# Long enough for the auth service's worker threads (up to 40), its pool of SQLite connections
# and the runtimes' memory arenas to reach their working size.
WARMUP_SECONDS = 30.0
SAMPLE_INTERVAL_SECONDS = 0.25


def _sample_rss(pids: dict[str, int], seconds: float) -> list[tuple[float, dict[str, int]]]:
    samples = []
    started = time.monotonic()
    while (elapsed := time.monotonic() - started) < seconds:
        samples.append((elapsed, program_rss_kib(pids)))
        time.sleep(SAMPLE_INTERVAL_SECONDS)
    return samples


def test_soak(stack: Stack, token: str) -> None:
    window = min(60.0, SOAK_SECONDS / 6)
    asyncio.run(run_load(stack, token, WARMUP_SECONDS, CONCURRENCY))
    pids = program_pids(stack)
    samples: list[tuple[float, dict[str, int]]] = []
    sampler = threading.Thread(
        target=lambda: samples.extend(_sample_rss(pids, SOAK_SECONDS)), daemon=True
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
    assert program_pids(stack) == pids  # nothing restarted
    for program in PROGRAMS:
        before = min(rss[program] for rss in first)
        after = min(rss[program] for rss in last)
        means = [statistics.mean(rss[program] for rss in window) for window in (first, last)]
        print(
            f"rss {program}: lowest {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB"
            f" (mean {means[0] / 1024:.1f} -> {means[1] / 1024:.1f} MiB)"
        )
        assert after < before * (1 + MAX_RSS_GROWTH), (program, before, after)
