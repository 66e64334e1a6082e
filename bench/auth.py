"""Benchmark of the auth service's hot path, GET /oauth2/check, against GET /healthz.

Starts the real service (``python -m auth_service serve``, uvloop + httptools) on a free
127.0.0.1 port with a throw-away SQLite file holding --tokens tokens, then drives it with
keep-alive HTTP/1.1 connections for a bounded time and request count per phase:

  healthz        GET /healthz                          the baseline: HTTP + FastAPI, no auth
  check          GET /oauth2/check, valid token        sha256 + one indexed SQLite read -> 200
  check-denied   GET /oauth2/check, unknown token      the same lookup, finding nothing -> 401

For each phase it prints requests per second, p50/p99 latency and the server process's CPU time
per request (utime + stime from /proc), and the ratios check / healthz. It also times, in this
process, AuthService.check alone and one scrypt client-secret verification (what the check
path avoids). Run from the repository root:

    .venv/bin/python bench/auth.py            # ~35 s
    .venv/bin/python bench/auth.py --markdown # also print the docs/benchmarks.md table
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from auth_service.clock import system_clock  # noqa: E402
from auth_service.db_sqlite import SQLiteDatabase  # noqa: E402
from auth_service.ratelimit import AuthLimits, ClientAuthLimiter  # noqa: E402
from auth_service.security import hash_secret, verify_secret  # noqa: E402
from auth_service.service import AuthService, CheckOutcome  # noqa: E402
from auth_service.store import Store  # noqa: E402
from tests.harness import free_port  # noqa: E402

CLIENT_ID = "bench"
CLIENT_SECRET = "benchmark-client-secret-0123456789"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class PhaseResult:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    server_cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_per_request_us(self) -> float:
        return self.server_cpu_seconds / self.requests * 1e6

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1e3


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLOCK_TICKS


def start_server(database: Path, port: int) -> subprocess.Popen[bytes]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("AUTH_")}
    env.update(
        AUTH_DATABASE_PATH=str(database),
        AUTH_PORT=str(port),
        AUTH_LOG_LEVEL="warning",
        AUTH_BOOTSTRAP_CLIENT_ID=CLIENT_ID,
        AUTH_BOOTSTRAP_CLIENT_SECRET=CLIENT_SECRET,
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "auth_service", "serve"], cwd=REPO_ROOT, env=env
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the auth service exited during start")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", trust_env=False).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.05)
    server.kill()
    raise SystemExit("the auth service did not become ready in 30 s")


def add_background_tokens(database: Path, count: int) -> None:
    """Fill the tokens table so the lookup walks a realistically deep index."""
    now = int(time.time())
    with sqlite3.connect(database) as conn:
        conn.executemany(
            "INSERT INTO tokens (token_hash, client_id, scopes, issued_at, expires_at)"
            " VALUES (?, ?, 'detect', ?, ?)",
            ((secrets.token_bytes(32), CLIENT_ID, now, now + 3600) for _ in range(count)),
        )


def request_bytes(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def connection_loop(
    port: int,
    request: bytes,
    expected_status: bytes,
    deadline: float,
    budget: list[int],
    latencies: list[float],
) -> int:
    """Send request after request on one keep-alive connection; return the error count."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors = 0
    try:
        while budget[0] > 0 and time.perf_counter() < deadline:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            errors += status_line.split(b" ", 2)[1] != expected_status
    finally:
        writer.close()
    return errors


async def run_phase(
    name: str,
    port: int,
    pid: int,
    request: bytes,
    expected_status: int,
    args: argparse.Namespace,
) -> PhaseResult:
    warmup_deadline = time.perf_counter() + args.warmup
    await asyncio.gather(
        *(
            connection_loop(port, request, b"", warmup_deadline, [10**9], [])
            for _ in range(args.connections)
        )
    )
    latencies: list[float] = []
    budget = [args.max_requests]
    cpu_before = process_cpu_seconds(pid)
    started = time.perf_counter()
    errors = await asyncio.gather(
        *(
            connection_loop(
                port,
                request,
                str(expected_status).encode(),
                started + args.duration,
                budget,
                latencies,
            )
            for _ in range(args.connections)
        )
    )
    seconds = time.perf_counter() - started
    cpu = process_cpu_seconds(pid) - cpu_before
    return PhaseResult(name, len(latencies), sum(errors), seconds, latencies, cpu)


def time_in_process(database: Path, token: str) -> tuple[float, float]:
    """Microseconds per AuthService.check call, and milliseconds per scrypt verification."""
    store = Store(SQLiteDatabase(database).open())
    service = AuthService(
        store,
        system_clock,
        token_ttl_seconds=3600,
        realm="bench",
        limiter=ClientAuthLimiter(AuthLimits(), system_clock),
    )
    header = f"Bearer {token}"
    calls = 20_000
    started = time.perf_counter()
    for _ in range(calls):
        result = service.check(header, "detect")
    check_us = (time.perf_counter() - started) / calls * 1e6
    if result.outcome is not CheckOutcome.ALLOWED:
        raise SystemExit(f"in-process check failed: {result}")
    encoded = hash_secret(CLIENT_SECRET)
    started = time.perf_counter()
    for _ in range(5):
        verify_secret(CLIENT_SECRET, encoded)
    scrypt_ms = (time.perf_counter() - started) / 5 * 1e3
    return check_us, scrypt_ms


def print_report(
    results: list[PhaseResult], check_us: float, scrypt_ms: float, args: argparse.Namespace
) -> None:
    print(
        f"\n{args.connections} keep-alive connections, {args.duration:g} s per phase, "
        f"{args.tokens} tokens in the table, load average before: {args.load_before}"
    )
    print(
        f"{'phase':<14}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'server CPU us/req':>19}{'errors':>8}"
    )
    for result in results:
        print(
            f"{result.name:<14}{result.rate:>9.0f}{result.percentile_ms(0.5):>9.2f}"
            f"{result.percentile_ms(0.99):>9.2f}{result.cpu_per_request_us:>19.0f}"
            f"{result.errors:>8}"
        )
    baseline, check = results[0], results[1]
    print(
        f"check / healthz: {check.rate / baseline.rate:.2f}x the requests per second, "
        f"{check.cpu_per_request_us / baseline.cpu_per_request_us:.2f}x the server CPU per request"
    )
    print(
        f"in process: AuthService.check {check_us:.1f} us/call;"
        f" one scrypt verification {scrypt_ms:.1f} ms"
    )
    if args.markdown:
        print("\n| phase | req/s | p50 ms | p99 ms | server CPU µs/request |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for result in results:
            print(
                f"| {result.name} | {result.rate:.0f} | {result.percentile_ms(0.5):.2f} | "
                f"{result.percentile_ms(0.99):.2f} | {result.cpu_per_request_us:.0f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before each phase")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--max-requests", type=int, default=200_000, help="cap per phase")
    parser.add_argument("--tokens", type=int, default=100_000, help="extra rows in tokens")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    args.load_before = " ".join(f"{load:.2f}" for load in os.getloadavg())

    with tempfile.TemporaryDirectory(prefix="auth-bench-") as directory:
        database = Path(directory) / "auth.sqlite3"
        port = free_port()
        server = start_server(database, port)
        try:
            add_background_tokens(database, args.tokens)
            token = httpx.post(
                f"http://127.0.0.1:{port}/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=(CLIENT_ID, CLIENT_SECRET),
                trust_env=False,
            ).json()["access_token"]
            phases = [
                ("healthz", request_bytes("/healthz", {}), 200),
                (
                    "check",
                    request_bytes(
                        "/oauth2/check",
                        {"Authorization": f"Bearer {token}", "X-Required-Scope": "detect"},
                    ),
                    200,
                ),
                (
                    "check-denied",
                    request_bytes(
                        "/oauth2/check",
                        {
                            "Authorization": f"Bearer {secrets.token_urlsafe(32)}",
                            "X-Required-Scope": "detect",
                        },
                    ),
                    401,
                ),
            ]
            results = [
                asyncio.run(run_phase(name, port, server.pid, request, status, args))
                for name, request, status in phases
            ]
            check_us, scrypt_ms = time_in_process(database, token)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(15)
    print_report(results, check_us, scrypt_ms, args)


if __name__ == "__main__":
    main()
