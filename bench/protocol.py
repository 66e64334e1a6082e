"""The Open Inference Protocol benchmark: this app against MLServer, same models, same batching.

    .venv/bin/python bench/protocol.py --markdown          # the figures in docs/benchmarks.md
    .venv/bin/python bench/protocol.py --duration 2 --repeats 1    # a quick look

MLServer (PyPI `mlserver`, the protocol's server a user would pick instead) runs from its own
environment, `.venv-mlserver` (`scripts/install --mlserver` makes it: its pins clash with the
app's), serving the repository's `model.onnx` of the VAE decoder and of the classifier through
`bench/mlserver/onnx_runtime.py` (ONNX Runtime, one intra-op thread; the classifier's stored
vectorizer on a BYTES input, as the app does), with adaptive batching at the app's settings
(at most 32 rows, 2 ms) and its default of one inference worker process. The app runs alone
(`uvicorn app.main:app`, one process, no gateway: MLServer has none either). Both answer the
same numbers (checked before the load). Then wrk (bench/stack.py's Lua script and runner)
sends `POST /v2/models/{vae,classifier}/infer` with the same JSON bodies (one row each) at each
concurrency, to each server in turn; every figure is the median over --repeats runs, every
ratio is computed within a run. RSS of each server (with its worker) after the load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import statistics
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from bench.serving import MODELS_DIR, Server, app_env, launch, serve  # noqa: E402
from bench.stack import (  # noqa: E402
    CLASSIFY_V2,
    DOC,
    VAE_V2,
    Route,
    load_average,
    machine,
    median_load,
    median_ratio,
    the_command,
    venv_package_version,
    warmed_load,
    write_section,
)
from modelkit import load_model  # noqa: E402
from tests.e2e.stack import tree_rss_kib  # noqa: E402
from tests.harness import free_port  # noqa: E402

MLSERVER = PROJECT_ROOT / ".venv-mlserver" / "bin" / "mlserver"
MODELS = ("vae", "classifier")
MAX_BATCH_SIZE, MAX_DELAY_MS = 32, 2.0  # the app's defaults, given to MLServer too
BEGIN_MARKER = "<!-- bench/protocol.py: begin (generated; do not edit by hand) -->"
END_MARKER = "<!-- bench/protocol.py: end -->"


def routes() -> dict[str, Route]:
    return {
        "vae": Route("vae", "POST", "/v2/models/vae/infer", VAE_V2),
        "classifier": Route("classifier", "POST", "/v2/models/classifier/infer", CLASSIFY_V2),
    }


def mlserver_repository(work: Path, models_dir: Path) -> Path:
    """MLServer's model repository: per model, its settings and the runtime class beside them."""
    root = work / "mlserver"
    for name in MODELS:
        model = load_model(models_dir, name)  # the version the app serves: the latest
        folder = root / name
        folder.mkdir(parents=True)
        shutil.copy(PROJECT_ROOT / "bench" / "mlserver" / "onnx_runtime.py", folder)
        extra: dict[str, Any] = {"outputs": model.output_names}
        if name == "classifier":
            vectorizer = model.path / "vectorizer.json"
            extra.update(vectorizer=str(vectorizer), project_root=str(PROJECT_ROOT))
        settings = {
            "name": name,
            "implementation": "onnx_runtime.OnnxModel",
            "max_batch_size": MAX_BATCH_SIZE,
            "max_batch_time": MAX_DELAY_MS / 1000,
            "parameters": {
                "uri": str(model.path / model.spec.artifacts["onnx"]),
                "version": str(model.version),
                "extra": extra,
            },
        }
        (folder / "model-settings.json").write_text(json.dumps(settings, indent=2))
    return root


@contextlib.contextmanager
def mlserver(work: Path, models_dir: Path) -> Iterator[Server]:
    if not MLSERVER.exists():
        raise SystemExit(f"{MLSERVER} is missing: `scripts/install --mlserver` makes it")
    root = mlserver_repository(work, models_dir)
    port = free_port()
    (root / "settings.json").write_text(
        json.dumps({
            "host": "127.0.0.1", "http_port": port, "grpc_port": free_port(),
            "metrics_port": free_port(), "parallel_workers": 1, "debug": False,
        })
    )  # fmt: skip
    command = [str(MLSERVER), "start", str(root)]
    with launch(command, port, {}, "mlserver", ready_path="/v2/health/ready") as server:
        yield server


def answer(port: int, route: Route) -> dict[str, np.ndarray]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{route.path}",
        data=route.body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        outputs = json.load(response)["outputs"]
    return {o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in outputs}


def check_same_answers(app_port: int, mlserver_port: int) -> None:
    for route in routes().values():
        ours, theirs = answer(app_port, route), answer(mlserver_port, route)
        for name, values in theirs.items():
            np.testing.assert_allclose(ours[name], values, atol=1e-5, err_msg=route.path)


def one_run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    run: dict[str, Any] = {}
    work.mkdir(parents=True)
    with contextlib.ExitStack() as servers:
        app = servers.enter_context(serve("app.main:app", app_env(list(MODELS), args.models_dir)))
        other = servers.enter_context(mlserver(work, args.models_dir))
        check_same_answers(app.port, other.port)
        for key, route in routes().items():
            for concurrency in args.concurrency:
                for server_name, server in (("app", app), ("mlserver", other)):
                    url = f"http://127.0.0.1:{server.port}"
                    load = warmed_load(url, route, "-", concurrency, args, work)
                    run.setdefault(key, {}).setdefault(str(concurrency), {})[server_name] = asdict(
                        load
                    )
        run["rss_mb"] = {
            "app": tree_rss_kib(app.process.pid) / 1024,
            "mlserver": tree_rss_kib(other.process.pid) / 1024,
        }
    return run


def median_report(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for key in routes():
        for concurrency in runs[0][key]:
            cell: dict[str, Any] = {
                server: median_load(run[key][concurrency][server] for run in runs)
                for server in ("app", "mlserver")
            }
            cell["ratio"] = median_ratio(
                (
                    run[key][concurrency]["app"]["per_second"],
                    run[key][concurrency]["mlserver"]["per_second"],
                )
                for run in runs
            )
            summary.setdefault(key, {})[concurrency] = cell
    summary["rss_mb"] = {
        server: statistics.median(run["rss_mb"][server] for run in runs)
        for server in ("app", "mlserver")
    }
    return summary


def markdown(report: dict[str, Any]) -> str:
    summary, host = report["median"], report["machine"]
    lines = [
        f"Run on {report['date']} with `{report['command']}` (runs: {report['repeats']};"
        f" {report['duration_s']} s per measurement after {report['warmup_s']} s of warm-up)."
        f" Machine: {host['cpu']}, {host['cores']} cores; load average"
        f" {' / '.join(map(str, report['load_before']))} before,"
        f" {' / '.join(map(str, report['load_after']))} after. MLServer"
        f" {report['mlserver_version']}, one inference worker, adaptive batching"
        f" {MAX_BATCH_SIZE} rows / {MAX_DELAY_MS:g} ms; the app alone, micro-batching"
        f" {MAX_BATCH_SIZE} rows / {MAX_DELAY_MS:g} ms; both ONNX Runtime with 1 intra-op thread,"
        " JSON in and out, one row per request.",
        "",
        "| route | concurrency | app req/s (p50 / p99 ms) | MLServer req/s (p50 / p99 ms)"
        " | app / MLServer |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, route in routes().items():
        for concurrency, cell in summary[key].items():
            app, other = cell["app"], cell["mlserver"]
            lines.append(
                f"| `{route.label}` | {concurrency}"
                f" | {app['per_second']:.1f} ({app['p50_ms']:.1f} / {app['p99_ms']:.1f})"
                f" | {other['per_second']:.1f} ({other['p50_ms']:.1f} / {other['p99_ms']:.1f})"
                f" | **{cell['ratio']:.2f}x** |"
            )
    errors = sum(
        cell[server]["errors"]
        for key in routes()
        for cell in summary[key].values()
        for server in ("app", "mlserver")
    )
    rss = summary["rss_mb"]
    lines += [
        "",
        f"Errors (non-200, socket errors, timeouts; all runs): {errors}. RSS after the load:"
        f" app {rss['app']:.0f} MB, MLServer {rss['mlserver']:.0f} MB (with its worker).",
    ]
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each")
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument("--json", type=Path, help="write every figure of every run here")
    parser.add_argument("--markdown", nargs="?", type=Path, const=DOC,
                        help="rewrite this file's generated protocol section")  # fmt: skip
    args = parser.parse_args()
    args.models_dir = args.models_dir.resolve()
    return args


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: `scripts/install --bench` installs it")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    report: dict[str, Any] = {
        "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "command": the_command(),
        "repeats": args.repeats,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "machine": machine(),
        "mlserver_version": venv_package_version(MLSERVER.parent / "python", "mlserver"),
        "load_before": load_average(),
    }
    work = Path(tempfile.mkdtemp(prefix="bench-protocol-"))
    try:
        report["runs"] = [one_run(args, work / str(i)) for i in range(args.repeats)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["load_after"] = load_average()
    report["median"] = median_report(report["runs"])
    section = markdown(report)
    print(section)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        write_section(args.markdown, section, BEGIN_MARKER, END_MARKER)


if __name__ == "__main__":
    main()
