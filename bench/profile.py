"""Where a request's CPU time goes: the app alone under wrk, sampled by py-spy, per route.

    .venv/bin/python bench/profile.py                                # every route, 10 s each
    .venv/bin/python bench/profile.py --routes classify --seconds 5 --out /tmp/profiles
    .venv/bin/python bench/profile.py --checkout /tmp/before         # another checkout's app

For each route (bench/stack.py's bodies) it starts `uvicorn app.main:app` (one process, every
model, as bench/serving.py does), warms it up, then records it with py-spy (`--format raw`,
every thread, idle threads left out, so a sample is CPU time) while wrk drives it at
`--concurrency` (1: the latency a lone user sees). It prints, per route, the CPU time per
request split into what the work is — the model, image decoding, PNG encoding, request parsing,
response encoding, the HTTP server, asyncio and thread hops, metrics, logging — found by the
innermost matching frame of each sample, then the functions with the most samples of their own.
`--out DIR` keeps py-spy's collapsed stacks (flamegraph.pl and speedscope read them).

`--checkout DIR` runs the app of another checkout (e.g. `git worktree add /tmp/before <commit>`)
with this checkout's interpreter and models: docs/benchmarks.md shows a profile before and after
a change measured this way, in one run.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from bench.serving import MODELS_DIR, serve  # noqa: E402
from bench.stack import Route, routes, run_wrk  # noqa: E402

PY_SPY = Path(sys.executable).parent / "py-spy"
RATE = 400  # samples per second per thread: ~1 % overhead, enough samples in 10 s

# What a sample's time is spent on: the first category (in this order) one of whose patterns
# appears in any frame of the sample. The model comes first so that ONNX Runtime's time is
# never charged to the thread hop that runs it; the HTTP server and asyncio come last, since
# every request's frames lie under them.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("model (ONNX Runtime)", ("(onnxruntime/", "run (modelkit/runtimes.py")),
    ("PNG encoding", ("encode_png", "encode_gray_png", "_save (PIL/PngImagePlugin")),
    ("image decoding and letterbox", ("decode_image", "to_model_input", "prepare_image")),
    ("images from the model's output", ("grayscale_to_image", "to_gray8", "tile (app/images.py")),
    ("tf-idf vectorizer", ("(modelkit/text.py",)),
    ("detection post-processing", ("(modelkit/detection.py",)),
    (
        "request parsing",
        (
            "request_body_to_args",
            "solve_dependencies",
            "read_image_bytes",
            "json (starlette/requests.py",
            "body (starlette/requests.py",
            "(app/protocol/_codec.py",
        ),
    ),
    (
        "response encoding",
        ("serialize_response", "jsonable_encoder", "render (", "(pydantic", "dumps ("),
    ),
    ("metrics", ("(app/metrics.py", "(prometheus_client/")),
    ("logging", ("(logging/", "(app/logging.py")),
    (
        "HTTP server (uvicorn, starlette routing)",
        ("(uvicorn/", "(starlette/", "(fastapi/", "(httptools/", "(h11/"),
    ),
    ("asyncio and thread hops", ("(asyncio/", "(threading.py", "(concurrent/", "(anyio/")),
)
# Innermost frames where a thread waits rather than works. py-spy leaves out threads it sees
# idle, but a thread blocked in a C call (a worker thread's queue, a condition) or the event
# loop inside uvloop's C code (socket I/O and epoll alike) is often sampled as active: such
# samples are counted apart, and the CPU time per request is read from /proc instead.
WAITING: tuple[tuple[str, str], ...] = (
    ("worker thread waiting for work", "_worker (concurrent/futures/thread.py"),
    ("thread waiting on a condition", "wait (threading.py"),
    ("event loop in uvloop (socket I/O or waiting)", "Runner.run (asyncio/runners.py"),
)


# CPU time /proc counted that no working sample shows: uvloop's own C code (socket reads and
# writes sit under the event loop's frame, counted as waiting), ONNX Runtime's pool threads
# (no Python frames), and samples py-spy missed while it did not stop the process.
UNSAMPLED = "not attributed (uvloop's C code, ONNX Runtime's pool threads, missed samples)"


@dataclass
class Profile:
    route: str
    requests: int
    seconds: float
    cpu_s: float  # the app process's user + system time while wrk ran (/proc), all threads
    concurrency: int
    samples: int = 0
    by_category: collections.Counter[str] = field(default_factory=collections.Counter)
    by_function: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_s * 1000 / max(self.requests, 1)

    @property
    def working_samples(self) -> int:
        waiting = {name for name, _ in WAITING}
        return sum(n for name, n in self.by_category.items() if name not in waiting)

    def breakdown(self) -> dict[str, float]:
        """CPU ms per request of each category, from its samples (a sample is 1/RATE s of a
        thread's time), and the rest of what /proc counted (UNSAMPLED)."""
        waiting = {name for name, _ in WAITING}
        per_request = 1000 / RATE / max(self.requests, 1)
        found = {
            name: samples * per_request
            for name, samples in self.by_category.most_common()
            if name not in waiting
        }
        found[UNSAMPLED] = max(0.0, self.cpu_ms_per_request - sum(found.values()))
        return found


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, every thread (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def category(frames: list[str]) -> str:
    for name, pattern in WAITING:
        if frames and pattern in frames[-1]:
            return name
    for name, patterns in CATEGORIES:  # in order: the first category seen anywhere in the stack
        if any(pattern in frame for frame in frames for pattern in patterns):
            return name
    return "other"


def read_collapsed(path: Path, profile: Profile) -> None:
    """py-spy's raw format: `thread;frame;frame;... count` per line, outermost frame first."""
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")[1:]  # the first entry names the thread
        samples = int(count)
        profile.samples += samples
        profile.by_category[category(frames)] += samples
        if frames:
            profile.by_function[frames[-1]] += samples


def profile_route(port: int, pid: int, route: Route, args: argparse.Namespace) -> Profile:
    url = f"http://127.0.0.1:{port}"
    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    try:
        run_wrk(url, route, "-", args.concurrency, 2, 1_000_000, work)  # warm-up
        output = work / f"{route.key}.txt"
        recorder = subprocess.Popen(
            [str(PY_SPY), "record", "--pid", str(pid), "--rate", str(RATE), "--format", "raw",
             "--duration", str(args.seconds + 1), "--output", str(output), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            # wrk's window sits inside the recording's (1 s longer), so the samples are
            # charged to slightly fewer requests than ran: per-request figures err high by
            # at most the idle second, which holds no samples (idle threads are left out).
            cpu_before = process_cpu_s(pid)
            load = run_wrk(url, route, "-", args.concurrency, args.seconds, 1_000_000, work)
            cpu_s = process_cpu_s(pid) - cpu_before
        finally:
            _, stderr = recorder.communicate(timeout=args.seconds + 60)
        if recorder.returncode != 0 or not output.exists():
            raise RuntimeError(f"py-spy failed: {stderr.decode(errors='replace')}")
        profile = Profile(route.key, load.requests, load.seconds, cpu_s, args.concurrency)
        read_collapsed(output, profile)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            shutil.copy(output, args.out / output.name)
        return profile
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(profile: Profile, top: int) -> str:
    per_second = profile.requests / profile.seconds if profile.seconds else 0.0
    lines = [
        f"`{routes()[profile.route].label}`: {per_second:.0f} req/s at concurrency"
        f" {profile.concurrency}; the app's CPU time {profile.cpu_ms_per_request:.2f} ms per"
        f" request ({profile.samples} samples, {profile.working_samples} of them working)",
        "",
        "| where | CPU ms per request | share |",
        "| --- | ---: | ---: |",
    ]
    for name, ms in profile.breakdown().items():
        share = ms / max(profile.cpu_ms_per_request, 1e-9)
        lines.append(f"| {name} | {ms:.3f} | {share:.0%} |")
    waits = [
        f"{name} {profile.by_category[name] / max(profile.samples, 1):.0%}"
        for name, _ in WAITING
        if profile.by_category[name]
    ]
    lines += ["", f"Samples waiting, not working: {', '.join(waits) or 'none'}."]
    lines += ["", f"Functions with the most samples of their own (top {top}):", ""]
    for frame, samples in profile.by_function.most_common(top):
        lines.append(f"- {samples / max(profile.samples, 1):5.1%}  {frame}")
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", nargs="+", default=["classify", "detect", "vae"],
                        choices=sorted(routes()))  # fmt: skip
    parser.add_argument("--seconds", type=int, default=10, help="recorded seconds per route")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--top", type=int, default=12, help="functions listed per route")
    parser.add_argument("--checkout", type=Path, default=PROJECT_ROOT,
                        help="the checkout whose app runs (default: this one)")  # fmt: skip
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE",
                        help="settings for the app, e.g. APP_BATCHING__MAX_DELAY_MS=0")  # fmt: skip
    parser.add_argument("--out", type=Path, help="keep py-spy's collapsed stacks here")
    parser.add_argument("--json", type=Path, help="write the figures here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    for tool, install in ((PY_SPY, "scripts/install (dev extras)"), ("wrk", "--bench")):
        if shutil.which(str(tool)) is None:
            raise SystemExit(f"{tool} is missing: scripts/install {install} installs it")
    env = dict(item.split("=", 1) for item in args.env)
    env |= {"APP_MODELS_DIR": str(args.models_dir.resolve())}
    profiles: list[Profile] = []
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(serve("app.main:app", env, cwd=args.checkout.resolve()))
        for key in args.routes:
            profile = profile_route(server.port, server.process.pid, routes()[key], args)
            print(report(profile, args.top), flush=True)
            profiles.append(profile)
    if args.json:
        figures: list[dict[str, Any]] = [
            {
                "route": p.route,
                "requests": p.requests,
                "seconds": p.seconds,
                "cpu_ms_per_request": p.cpu_ms_per_request,
                "by_category_ms": p.breakdown(),
                "samples_by_category": dict(p.by_category),
                "top_functions": p.by_function.most_common(args.top),
            }
            for p in profiles
        ]
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
