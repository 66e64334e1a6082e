"""Serving benchmark: the raw runtime, this app over HTTP, and the naive baseline, per endpoint.

    .venv/bin/python bench/serving.py                   # every endpoint whose model exists
    .venv/bin/python bench/serving.py --endpoints classify --duration 5
    .venv/bin/python bench/serving.py --classifier-versions 2 3   # one version against another
    .venv/bin/python bench/serving.py --op-profile 2              # where a version's time goes

For each endpoint it measures, in one run:
  * the raw ONNX Runtime in-process: samples/s at batch 1 and at batch 32;
  * this app (`uvicorn app.main:app`, one process) over HTTP on 127.0.0.1 at concurrency 1
    and 32: requests/s, p50 and p99 latency;
  * the naive baseline (`bench/naive_app.py`: FastAPI + Keras `model.predict` per request)
    under the same load;
and, once, the app's cold start (process spawn to /readyz 200) and RSS with every model on
ONNX Runtime. Load runs only on 127.0.0.1 and is bounded by --duration and --max-requests.

`--classifier-versions A B` measures instead what a text costs with classifier version B against
version A, the first being the baseline: in-process, the time per text of the whole serving
path (`vectorizer.json` then ONNX Runtime, 1 thread) at batch 1 and 32 on a short news text,
at batch 32 on a whole article, and the app over HTTP
at concurrency 1 and 32, each version alone in a copy of the repository; `--rounds` rounds
interleave the versions, and each ratio is taken within a round before its median.
`--op-profile VERSION` prints ONNX Runtime's own profile of one classifier version instead: the
kernel time of each op type on a batch of 32 whole articles.
The load generator is a minimal keep-alive HTTP/1.1 client so that it costs the server's
cores as little as possible; it shares the machine with the server all the same.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = PROJECT_ROOT / "models"
HOST = "127.0.0.1"
sys.path.insert(0, str(PROJECT_ROOT))  # the shared harness, when run as a script
from tests.harness import free_port  # noqa: E402

NEWS_TEXT = (
    "The central bank raised its key interest rate by half a percentage point on Thursday, "
    "citing persistent inflation in services and a labour market that remains tight. Markets "
    "had expected a smaller move, and shares of banks and homebuilders fell in early trading "
    "while the currency strengthened against the dollar and the euro."
)
# A whole article (2,095 characters; 191 terms of version 2's vocabulary, 35 in NEWS_TEXT): the
# case where a sparse first layer does the most work.
ARTICLE_TEXT = " ".join(
    [
        NEWS_TEXT,
        "The governor told reporters that the committee had weighed the risk of a recession",
        "against prices that are still rising twice as fast as its target, and that further",
        "increases could follow if wage settlements in retail, hospitality and transport stay",
        "high. Two members voted to hold the rate, warning that mortgage costs already squeeze",
        "households and that the full effect of last year's rises has yet to reach them.",
        "Economists at several lenders revised their forecasts within an hour of the decision.",
        "One said the statement was more hawkish than anything since the financial crisis,",
        "another that the bank was trying to rebuild credibility after underestimating energy",
        "prices. Government ministers welcomed the move in public, though the opposition",
        "finance spokesman said families would pay for years of poor planning, and called for",
        "an inquiry into how the forecasts went wrong. Business groups were split: manufacturers",
        "complained that borrowing for new machinery and software becomes dearer just as orders",
        "from Europe and Asia recover, while pension funds and savers' associations praised a",
        "decision that lifts returns on deposits and bonds. In the housing market, estate agents",
        "reported fewer viewings and more sellers cutting asking prices in the north and the",
        "Midlands, and builders postponed several large projects. The technology sector, whose",
        "valuations rest on profits far in the future, led the fall on the stock exchange;",
        "software and semiconductor companies lost more than four per cent. Sports clubs and",
        "broadcasters, which had planned expensive stadium and studio upgrades, said they would",
        "review their budgets. The bank will publish its next report on the economy in May,",
        "with new projections for growth, unemployment, exports and the public finances.",
    ]
)


# -- load generation -------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection that sends prebuilt requests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection(HOST, port))

    async def send(self, raw: bytes) -> int:
        self.writer.write(raw)
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        length, chunked = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding" and "chunked" in value:
                chunked = True
        if chunked:
            while size := int((await self.reader.readline()).strip(), 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readline()
        else:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


def raw_request(method: str, path: str, body: bytes | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", "X-Client-Id: bench"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


@dataclass
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def _load(
    port: int, request: bytes, concurrency: int, duration: float, max_requests: int
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    deadline = started + duration

    async def worker() -> None:
        nonlocal errors
        connection = await Connection.open(port)
        try:
            while time.perf_counter() < deadline and len(latencies) + errors < max_requests:
                sent = time.perf_counter()
                status = await connection.send(request)
                if status == 200:
                    latencies.append(time.perf_counter() - sent)
                else:
                    errors += 1
        finally:
            connection.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return LoadResult(
        concurrency,
        len(latencies),
        errors,
        elapsed,
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
    )


def measure_load(
    port: int, request: bytes, concurrency: int, duration: float, max_requests: int
) -> LoadResult:
    # A short warm-up at the same concurrency, not counted.
    asyncio.run(_load(port, request, concurrency, min(1.0, duration / 4), max_requests))
    return asyncio.run(_load(port, request, concurrency, duration, max_requests))


# -- servers ---------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    start_seconds: float


@contextlib.contextmanager
def serve(
    target: str, env: dict[str, str], timeout: float = 180.0, cwd: Path = PROJECT_ROOT
) -> Iterator[Server]:
    """Start `uvicorn <target>` on a free loopback port; wait until /readyz answers 200.
    `cwd`: the checkout whose code runs (`python -m` puts it first on the path)."""
    port = free_port()
    command = [
        *(sys.executable, "-m", "uvicorn", target, "--host", HOST, "--port", str(port)),
        *("--no-access-log", "--log-level", "warning", "--app-dir", str(PROJECT_ROOT / "bench")),
    ]
    with launch(command, port, env, target.split(":")[0], timeout=timeout, cwd=cwd) as server:
        yield server


@contextlib.contextmanager
def launch(
    command: list[str],
    port: int,
    env: dict[str, str],
    name: str,
    ready_path: str = "/readyz",
    timeout: float = 180.0,
    cwd: Path = PROJECT_ROOT,
) -> Iterator[Server]:
    """Run `command` (a server that will listen on `port`), wait until `ready_path` answers
    200, and stop it (SIGINT, then SIGKILL) on the way out; its output goes to a log file."""
    log_path = Path(tempfile.gettempdir()) / f"bench-serving-{name}.log"
    log = open(log_path, "wb")  # noqa: SIM115 (closed in the finally below)
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=cwd, env={**os.environ, **env}, stdout=log, stderr=log,
        start_new_session=True,  # its own group: a server's workers are stopped with it
    )  # fmt: skip
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited; see {log.name}")
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"{name} not ready after {timeout} s; see {log.name}")
            if _ready(port, ready_path):
                break
            time.sleep(0.02)
        yield Server(process, port, time.perf_counter() - started)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
        log.close()


def _ready(port: int, path: str = "/readyz") -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as connection:
            connection.sendall(raw_request("GET", path))
            return connection.recv(64).split()[1] == b"200"
    except (OSError, IndexError):
        return False


def app_env(models: list[str], models_dir: Path) -> dict[str, str]:
    return {"APP_MODELS_DIR": str(models_dir), "APP_MODELS": ",".join(models)}


def naive_env(models: list[str], models_dir: Path) -> dict[str, str]:
    return {
        "NAIVE_MODELS_DIR": str(models_dir),
        "NAIVE_MODELS": ",".join(models),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }


# -- endpoints -------------------------------------------------------------------------------


@dataclass
class Endpoint:
    name: str
    model: str
    request: bytes
    raw_inputs: Callable[[Any, int], np.ndarray]  # (loaded model, batch size) -> runtime input


def _vae_inputs(model: Any, batch: int) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, 2)).astype(np.float32)


def _classifier_inputs(model: Any, batch: int) -> np.ndarray:
    from app.routes.classify import load_vectorizer

    return load_vectorizer(model).transform([NEWS_TEXT] * batch)


def detector_image(width: int = 320, height: int = 240) -> bytes:
    """A PNG with the words the detector looks for, "chat" and "rat" (laid out as at 320 x 240,
    scaled to the size)."""
    import io

    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (width, height), (250, 250, 245))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(8, round(32 * min(width / 320, height / 240))))
    for word, x, y in (("chat", 24, 30), ("rat", 170, 150)):
        draw.text((x * width // 320, y * height // 240), word, fill=(15, 15, 15), font=font)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _detector_inputs(model: Any, batch: int) -> np.ndarray:
    import io

    from PIL import Image

    from modelkit.detection import to_model_input

    image = Image.open(io.BytesIO(detector_image())).convert("RGB")
    return to_model_input([image] * batch, model.contract.detection.input_size)[0]


def endpoints() -> dict[str, Endpoint]:
    detect_body = json.dumps({"image": base64.b64encode(detector_image()).decode()}).encode()
    return {
        "vae": Endpoint(
            "GET /vae/sample", "vae", raw_request("GET", "/vae/sample?n=1&seed=1"), _vae_inputs
        ),
        "classify": Endpoint(
            "POST /classify",
            "classifier",
            raw_request("POST", "/classify", json.dumps({"text": NEWS_TEXT}).encode()),
            _classifier_inputs,
        ),
        "detect": Endpoint(
            "POST /detect",
            "detector",
            raw_request("POST", "/detect", detect_body),
            _detector_inputs,
        ),
    }


def raw_runtime(
    endpoint: Endpoint, models_dir: Path, duration: float, threads: int, version: int | None = None
) -> dict[int, float]:
    """Samples/s of `LoadedModel.predict` alone (the newest version, or `version`), at batch 1
    and 32."""
    from modelkit.repository import load_model

    model = load_model(models_dir, endpoint.model, version, threads=threads)
    rates = {}
    for batch in (1, 32):
        inputs = endpoint.raw_inputs(model, batch)
        model.predict(inputs)
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < duration / 2:
            model.predict(inputs)
            calls += 1
        rates[batch] = calls * batch / (time.perf_counter() - started)
    return rates


# -- report ----------------------------------------------------------------------------------


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} (1 / 5 min) on {os.cpu_count()} cores"


def run(args: argparse.Namespace) -> dict[str, Any]:
    available = {
        key: endpoint
        for key, endpoint in endpoints().items()
        if key in args.endpoints and any((args.models_dir / endpoint.model).glob("*/metadata.json"))
    }
    missing = sorted(set(args.endpoints) - set(available))
    if missing:
        print(f"skipping {missing}: model not in {args.models_dir}", file=sys.stderr)
    report: dict[str, Any] = {"machine_before": load_average(), "endpoints": {}}
    models = [endpoint.model for endpoint in available.values()]
    if models:
        with serve("app.main:app", app_env(models, args.models_dir)) as server:
            report["cold_start_s"] = server.start_seconds
            report["rss_mb_ready"] = rss_mb(server.process.pid)
            report["models_at_start"] = models
    for key, endpoint in available.items():
        print(f"== {endpoint.name}", file=sys.stderr)
        figures: dict[str, Any] = {
            "raw": raw_runtime(endpoint, args.models_dir, args.duration, args.threads),
        }
        for label, target, env in (
            ("app", "app.main:app", app_env([endpoint.model], args.models_dir)),
            ("naive", "naive_app:app", naive_env([endpoint.model], args.models_dir)),
        ):
            with serve(target, env) as server:
                figures[label] = {
                    concurrency: measure_load(
                        server.port,
                        endpoint.request,
                        concurrency,
                        args.duration,
                        args.max_requests,
                    )
                    for concurrency in (1, 32)
                }
                figures[f"{label}_rss_mb"] = rss_mb(server.process.pid)
        report["endpoints"][key] = figures
        print(markdown_rows(endpoint, figures), file=sys.stderr)
    report["machine_after"] = load_average()
    return report


def _per_text_seconds(model: Any, batch: int, duration: float, text: str = NEWS_TEXT) -> float:
    """Seconds per text of vectorizer + ONNX Runtime on `batch` copies of `text`."""
    from app.routes.classify import load_vectorizer

    vectorizer = load_vectorizer(model)
    texts = [text] * batch
    model.predict(vectorizer.transform(texts))
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < duration:
        model.predict(vectorizer.transform(texts))
        calls += 1
    return (time.perf_counter() - started) / (calls * batch)


def compare_classifier_versions(args: argparse.Namespace) -> dict[str, Any]:
    """Per-text cost of each classifier version in `args.classifier_versions`, rounds
    interleaved; ratios against the first version, taken within each round."""
    from modelkit.repository import load_model

    versions: list[int] = args.classifier_versions
    request = endpoints()["classify"].request
    rounds: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-classifier-") as scratch:
        repositories = {}
        for version in versions:  # each version alone: the app serves the newest it finds
            repository = Path(scratch) / f"v{version}"
            source = args.models_dir / "classifier"
            shutil.copytree(source / str(version), repository / "classifier" / str(version))
            if (source / "config.json").exists():
                shutil.copy(source / "config.json", repository / "classifier" / "config.json")
            repositories[version] = repository
        for round_index in range(args.rounds):
            figures: dict[str, dict[str, float]] = {}
            for version in versions:
                model = load_model(repositories[version], "classifier", threads=args.threads)
                row = {
                    f"in-process batch {batch} (µs/text)": 1e6
                    * _per_text_seconds(model, batch, args.duration / 2)
                    for batch in (1, 32)
                }
                row["in-process batch 32, article (µs/text)"] = 1e6 * _per_text_seconds(
                    model, 32, args.duration / 2, ARTICLE_TEXT
                )
                env = app_env(["classifier"], repositories[version])
                with serve("app.main:app", env) as server:
                    for concurrency in (1, 32):
                        result = measure_load(
                            server.port, request, concurrency, args.duration, args.max_requests
                        )
                        row[f"app c={concurrency} (req/s)"] = result.per_second
                figures[str(version)] = row
            rounds.append(figures)
            print(f"round {round_index + 1}: {json.dumps(figures)}", file=sys.stderr)
    return {"machine": load_average(), "versions": versions, "rounds": rounds}


def profile_classifier_ops(
    models_dir: Path, version: int, runs: int, batch: int = 32
) -> dict[str, Any]:
    """ONNX Runtime's own profiler on one classifier version: kernel time per op type, on
    `batch` copies of ARTICLE_TEXT, 1 intra-op thread as the app, averaged over `runs`."""
    import onnxruntime as ort

    from app.routes.classify import load_vectorizer
    from modelkit.repository import load_model

    model = load_model(models_dir, "classifier", version=version)
    features = load_vectorizer(model).transform([ARTICLE_TEXT] * batch)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="bench-ort-profile-") as scratch:
        options.profile_file_prefix = str(Path(scratch) / "ort")
        onnx_path = models_dir / "classifier" / str(version) / "model.onnx"
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        (onnx_input,) = session.get_inputs()
        for _ in range(runs):
            session.run(None, {onnx_input.name: features})
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op: collections.Counter[str] = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"] / runs  # µs per run
    return {
        "version": version,
        "batch": batch,
        "terms_per_text": int((features[0] != 0).sum()),
        "microseconds_per_batch": dict(per_op.most_common()),
    }


def format_op_profile(profile: dict[str, Any]) -> str:
    per_op = profile["microseconds_per_batch"]
    total = sum(per_op.values())
    lines = [
        f"classifier version {profile['version']}: {total:.0f} µs of kernel time per batch of "
        f"{profile['batch']} articles ({profile['terms_per_text']} terms each)",
        "| op | µs per batch | share |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {op} | {us:.0f} | {us / total:.0%} |" for op, us in per_op.items()]
    return "\n".join(lines)


def format_version_comparison(report: dict[str, Any]) -> str:
    """Medians per version, and the median over rounds of each version's ratio to the first
    (time per text: higher is costlier; for req/s the ratio is inverted likewise)."""
    base, *others = (str(version) for version in report["versions"])
    rounds = report["rounds"]
    measures = list(rounds[0][base])
    header = ["measure", *(f"version {v}" for v in (base, *others))]
    header += [f"cost {v} / {base}" for v in others]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for measure in measures:
        cells = [measure]
        for version in (base, *others):
            cells.append(f"{np.median([r[version][measure] for r in rounds]):.1f}")
        for version in others:
            # Cost ratio: time per text grows with cost, requests/s shrinks with it.
            ratios = [
                r[version][measure] / r[base][measure]
                if "µs" in measure
                else r[base][measure] / r[version][measure]
                for r in rounds
            ]
            cells.append(f"{np.median(ratios):.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_rows(endpoint: Endpoint, figures: dict[str, Any]) -> str:
    raw = figures["raw"]
    rows = [
        f"| {endpoint.name} | raw ONNX Runtime, in-process | batch 1: {raw[1]:.0f} samples/s;"
        f" batch 32: {raw[32]:.0f} samples/s | |"
    ]
    for label, title in (("app", "this app"), ("naive", "naive baseline")):
        for concurrency in (1, 32):
            result: LoadResult = figures[label][concurrency]
            rows.append(
                f"| {endpoint.name} | {title}, concurrency {concurrency} |"
                f" {result.per_second:.1f} req/s, p50 {result.p50_ms:.1f} ms,"
                f" p99 {result.p99_ms:.1f} ms | {result.requests} ok, {result.errors} errors |"
            )
    app32, naive32 = figures["app"][32].per_second, figures["naive"][32].per_second
    rows.append(
        f"| {endpoint.name} | ratios | app / naive at c=32: {app32 / naive32:.1f}x;"
        f" app c=32 / raw batch 32: {app32 / raw[32]:.2f}x | |"
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--endpoints",
        nargs="+",
        default=["vae", "classify", "detect"],
        choices=["vae", "classify", "detect"],
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--max-requests", type=int, default=20_000, help="cap per measurement")
    parser.add_argument("--threads", type=int, default=1, help="ORT threads of the raw runtime")
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--classifier-versions",
        type=int,
        nargs="+",
        metavar="VERSION",
        help="compare the per-text cost of these classifier versions (the first: baseline)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --classifier-versions")
    parser.add_argument(
        "--op-profile",
        type=int,
        metavar="VERSION",
        help="instead: ONNX Runtime's kernel time per op of this classifier version, 32 articles",
    )
    parser.add_argument("--runs", type=int, default=200, help="batches of --op-profile")
    args = parser.parse_args()
    args.models_dir = args.models_dir.resolve()
    if args.op_profile is not None:
        profile = profile_classifier_ops(args.models_dir, args.op_profile, args.runs)
        print(format_op_profile(profile))
        if args.json:
            args.json.write_text(json.dumps(profile, indent=2) + "\n")
        return
    if args.classifier_versions:
        if len(args.classifier_versions) < 2:
            parser.error("--classifier-versions needs a baseline and at least one other")
        comparison = compare_classifier_versions(args)
        print(f"\nmachine: {comparison['machine']} after")
        print(format_version_comparison(comparison))
        if args.json:
            args.json.write_text(json.dumps(comparison, indent=2) + "\n")
        return
    report = run(args)
    print(f"\nmachine: {report['machine_before']} before, {report['machine_after']} after")
    if "cold_start_s" in report:
        print(
            f"app cold start to ready: {report['cold_start_s']:.2f} s"
            f" with {report['models_at_start']};"
            f" RSS at ready: {report['rss_mb_ready']:.0f} MB"
        )
    print("\n| endpoint | what | figures | notes |\n| --- | --- | --- | --- |")
    all_endpoints = endpoints()
    for key, figures in report["endpoints"].items():
        print(markdown_rows(all_endpoints[key], figures))
        print(
            f"| {all_endpoints[key].name} | RSS after load | app {figures['app_rss_mb']:.0f} MB;"
            f" naive {figures['naive_rss_mb']:.0f} MB | |"
        )
    if args.json:
        args.json.write_text(json.dumps(report, default=lambda o: o.__dict__, indent=2))


if __name__ == "__main__":
    main()
