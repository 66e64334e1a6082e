"""The app against LitServe and BentoML: the same models, through the same modelkit functions.

    .venv/bin/python bench/peers.py --markdown                  # the figures in docs/benchmarks.md
    .venv/bin/python bench/peers.py --duration 2 --warmup 1 --repeats 1    # a quick look

The app runs alone (`uvicorn app.main:app`, one process, no gateway: the peers have none) and
serves the classifier and the detector. LitServe and BentoML run from their own environments,
`.venv-litserve` and `.venv-bentoml` (`scripts/install --peers` makes both from pinned
versions), through `bench/peers/litserve_server.py` and `bench/peers/bentoml_service.py`: the
versions the app serves and its batch sizes (read from its `GET /v1/models`), loaded through
`modelkit.load_model` with one ONNX Runtime intra-op thread (`--peer-threads`), and the
app's steps around the networks (`bench/peers/peer_models.py`). All three answer
`POST /classify` and `POST /detect` with the app's JSON.

Each of --repeats rounds starts the three servers anew, checks that they answer the same (5
texts, 3 images), then, for each route and concurrency (the lowest first), has wrk
(bench/stack.py's Lua script and runner) send bench/stack.py's bodies (one news text; one
128 x 128 PNG, base64) to each server in turn, after a warm-up at the same concurrency; the
order of the servers rotates from round to round. Anew in each round, because BentoML's
adaptive dispatcher carries the wait it learnt under load into the next measurements: right
after concurrency 32, its `/detect` at concurrency 1 ran at 3 req/s (p50 350 ms) for longer
than a warm-up. All three stay up for the whole round, each measured while the other two are
stopped (SIGSTOP to their process groups, SIGCONT after): LitServe's idle inference workers
poll their queues every millisecond, a fifth of a core of this 2-core machine, which would
otherwise be taken from the server under load. Every figure reported is the median over the
rounds; every ratio is computed within a round, then its median taken. RSS of each server's
process tree after each round's load. Everything started is stopped on exit, Ctrl-C and
SIGTERM included.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import math
import os
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

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from bench.serving import (  # noqa: E402
    HOST,
    MODELS_DIR,
    NEWS_TEXT,
    Server,
    app_env,
    detector_image,
    launch,
    serve,
)
from bench.stack import (  # noqa: E402
    DOC,
    MEASUREMENT_ERRORS,
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
from bench.stack import routes as stack_routes  # noqa: E402
from tests.e2e.stack import tree_rss_kib  # noqa: E402
from tests.harness import free_port  # noqa: E402

SERVERS = ("app", "litserve", "bentoml")
PEERS = SERVERS[1:]
TITLES = {"app": "app", "litserve": "LitServe", "bentoml": "BentoML"}
VENVS = {peer: PROJECT_ROOT / f".venv-{peer}" for peer in PEERS}
PEERS_DIR = PROJECT_ROOT / "bench" / "peers"
MODELS = ("classifier", "detector")
ROUTES = ("classify", "detect")
TOLERANCE = 1e-4  # on probabilities, confidences and box coordinates
# Each peer's batching, the best measured on the 2-core machine (docs/benchmarks.md):
LITSERVE_BATCH_TIMEOUT_MS = 1.0
BENTOML_MAX_LATENCY_MS = 10_000  # a deadline (503 past it), not a window: above any p99 here
BEGIN_MARKER = "<!-- bench/peers.py: begin (generated; do not edit by hand) -->"
END_MARKER = "<!-- bench/peers.py: end -->"

# The answers compared before the load: five texts (with different top_k) and three images:
# the benchmark's 128 x 128 one and a 320 x 240 one, with "chat" and "rat" on them, and one
# with other words only (no detection expected, so empty lists are compared too).
TEXTS = (
    (NEWS_TEXT, 3),
    ("The striker scored twice in the cup final and the champions lifted the trophy.", 3),
    ("The new smartphone has a faster chip, a larger battery and a better camera.", 5),
    ("The prime minister faces a vote of no confidence after the budget was rejected.", 1),
    ("The film won three awards at the festival, including best actress and best score.", 2),
)


def routes() -> dict[str, Route]:
    """bench/stack.py's bodies, so that the figures compare with `make bench`."""
    every = stack_routes()
    return {key: every[key] for key in ROUTES}


def other_words_image(width: int = 240, height: int = 180) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (width, height), (240, 244, 250))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=28)
    for word, x, y in (("dog", 20, 30), ("bird", 110, 110)):
        draw.text((x, y), word, fill=(20, 20, 20), font=font)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def check_bodies() -> list[tuple[str, bytes]]:
    """(path, JSON body) of every request whose answers are compared."""
    images = (detector_image(128, 128), detector_image(320, 240), other_words_image())
    texts = [{"text": text, "top_k": top_k} for text, top_k in TEXTS]
    encoded = [{"image": base64.b64encode(image).decode()} for image in images]
    return [
        *(("/classify", json.dumps(body).encode()) for body in texts),
        *(("/detect", json.dumps(body).encode()) for body in encoded),
    ]


# -- the servers -----------------------------------------------------------------------------


def get_json(port: int, path: str, body: bytes | None = None) -> Any:
    request = urllib.request.Request(
        f"http://{HOST}:{port}{path}", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def served_models(app_port: int) -> dict[str, dict[str, Any]]:
    """What the app serves (`GET /v1/models`): the peers get the same versions and batch
    sizes."""
    models = {model["name"]: model for model in get_json(app_port, "/v1/models")["models"]}
    return {
        name: {
            "version": models[name]["version"],
            "max_batch_size": models[name]["batching"]["max_batch_size"],
            "max_delay_ms": models[name]["batching"]["max_delay_ms"],
        }
        for name in MODELS
    }


def app_lone_threads(models_dir: Path) -> dict[str, int | None]:
    """The app's `lone_threads` per model, as it reads them (config.json; no APP_* is passed)."""
    from app.settings import Settings
    from modelkit.repository import read_model_config

    settings = Settings(_env_file=None)
    return {
        name: settings.options_for(name, read_model_config(models_dir, name)).lone_threads
        for name in MODELS
    }


def peer_env(
    served: dict[str, dict[str, Any]], models_dir: Path, threads: int = 1
) -> dict[str, str]:
    """The variables bench/peers/peer_models.py reads, and the project root for modelkit."""
    env = {
        "PYTHONPATH": str(PROJECT_ROOT),
        "PEERS_MODELS_DIR": str(models_dir),
        "PEERS_THREADS": str(threads),
    }
    for name, model in served.items():
        env[f"PEERS_{name.upper()}_VERSION"] = str(model["version"])
        env[f"PEERS_{name.upper()}_MAX_BATCH_SIZE"] = str(model["max_batch_size"])
    return env


def require_venv(peer: str) -> Path:
    python = VENVS[peer] / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{VENVS[peer]} is missing: `scripts/install --peers` makes it")
    return python


@contextlib.contextmanager
def litserve(env: dict[str, str], args: argparse.Namespace) -> Iterator[Server]:
    port = free_port()
    command = [
        *(str(require_venv("litserve")), str(PEERS_DIR / "litserve_server.py")),
        *("--port", str(port), "--batch-timeout-ms", str(args.litserve_batch_timeout_ms)),
    ]
    with launch(command, port, env, "litserve", ready_path="/health") as server:
        yield server


@contextlib.contextmanager
def bentoml(env: dict[str, str], args: argparse.Namespace, work: Path) -> Iterator[Server]:
    port = free_port()
    command = [
        *(str(require_venv("bentoml").parent / "bentoml"), "serve", "bentoml_service:Gateway"),
        *("--working-dir", str(PEERS_DIR), "--host", HOST, "--port", str(port)),
    ]
    env = {
        **env,
        "PEERS_BENTOML_MAX_LATENCY_MS": str(args.bentoml_max_latency_ms),
        "BENTOML_HOME": str(work / "bentoml-home"),  # its store and config: thrown away
        "BENTOML_DO_NOT_TRACK": "true",
    }
    with launch(command, port, env, "bentoml", ready_path="/readyz") as server:
        yield server


@contextlib.contextmanager
def alone(servers: dict[str, Server], name: str) -> Iterator[Server]:
    """`name`'s server with the others stopped (their whole process groups), resumed after."""
    others = [server.process.pid for other, server in servers.items() if other != name]
    try:
        for group in others:
            os.killpg(group, signal.SIGSTOP)
        yield servers[name]
    finally:
        for group in others:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGCONT)


# -- same answers ----------------------------------------------------------------------------


def differences(ours: Any, theirs: Any, where: str = "") -> list[str]:
    """Where two JSON answers differ: numbers by more than TOLERANCE, anything else at all."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        if ours.keys() != theirs.keys():
            return [f"{where or '.'}: keys {sorted(ours)} != {sorted(theirs)}"]
        return [d for key in ours for d in differences(ours[key], theirs[key], f"{where}.{key}")]
    if isinstance(ours, list) and isinstance(theirs, list):
        if len(ours) != len(theirs):
            return [f"{where}: {len(ours)} items != {len(theirs)}"]
        pairs = zip(ours, theirs, strict=True)
        return [d for i, (a, b) in enumerate(pairs) for d in differences(a, b, f"{where}[{i}]")]
    if is_number(ours) and is_number(theirs):
        close = math.isclose(ours, theirs, rel_tol=0, abs_tol=TOLERANCE)
        return [] if close else [f"{where}: {ours} != {theirs}"]
    same = type(ours) is type(theirs) and ours == theirs  # true is not 1 in JSON
    return [] if same else [f"{where}: {ours!r} != {theirs!r}"]


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_same_answers(servers: dict[str, Server]) -> dict[str, Any]:
    """Every peer's answers to the check requests against the app's; raises on a difference."""
    found: list[str] = []
    detections = []  # per image, the app's: the comparison covered some, and none
    for path, body in check_bodies():
        ours = get_json(servers["app"].port, path, body)
        if path == "/detect":
            detections.append(len(ours["detections"]))
        for peer in PEERS:
            theirs = get_json(servers[peer].port, path, body)
            found += [f"{TITLES[peer]} {path}{d}" for d in differences(ours, theirs)]
    if found:
        raise AssertionError("the servers answer differently:\n" + "\n".join(found[:20]))
    return {"texts": len(TEXTS), "images": len(detections), "detections": detections}


# -- the rounds ------------------------------------------------------------------------------


def rotated(index: int) -> list[str]:
    """The servers' order in round `index`: each goes first in turn."""
    shift = index % len(SERVERS)
    return [*SERVERS[shift:], *SERVERS[:shift]]


@contextlib.contextmanager
def started(args: argparse.Namespace, work: Path) -> Iterator[dict[str, Server]]:
    """The app, then the peers serving what it serves."""
    with contextlib.ExitStack() as stack:
        app = stack.enter_context(serve("app.main:app", app_env(list(MODELS), args.models_dir)))
        env = peer_env(served_models(app.port), args.models_dir, args.peer_threads)
        yield {
            "app": app,
            "litserve": stack.enter_context(litserve(env, args)),
            "bentoml": stack.enter_context(bentoml(env, args, work)),
        }


def one_round(index: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The three servers started anew, their answers compared, then each route at each
    concurrency (the lowest first) on each server in turn, in this round's order."""
    work.mkdir(parents=True)
    with started(args, work) as servers:
        order = rotated(index)
        result: dict[str, Any] = {
            "order": order,
            "start_s": {name: server.start_seconds for name, server in servers.items()},
            "served": served_models(servers["app"].port),
            "same_answers": check_same_answers(servers),
            "load": {},
            "failures": [],
        }
        print(f"round {index + 1}: same answers {result['same_answers']}", file=sys.stderr)
        measure_round(index, servers, order, args, work, result)
        result["rss_mb"] = {n: tree_rss_kib(s.process.pid) / 1024 for n, s in servers.items()}
    return result


def measure_round(
    index: int,
    servers: dict[str, Server],
    order: list[str],
    args: argparse.Namespace,
    work: Path,
    result: dict[str, Any],
) -> None:
    for key in args.routes:
        route = routes()[key]
        for concurrency in args.concurrency:
            for name in order:
                url = f"http://{HOST}:{servers[name].port}"
                try:
                    with alone(servers, name):
                        load = warmed_load(url, route, "-", concurrency, args, work)
                except MEASUREMENT_ERRORS as error:
                    message = f"round {index + 1} {name} {route.label} c={concurrency}: {error}"
                    result["failures"].append(message.splitlines()[0][:300])
                    print(f"  warning: {message}", file=sys.stderr)
                    continue
                cell = result["load"].setdefault(key, {}).setdefault(str(concurrency), {})
                cell[name] = asdict(load)
                print(
                    f"  round {index + 1} {TITLES[name]:8} {route.label:15} c={concurrency:<3}"
                    f" {load.per_second:8.1f} req/s  p50 {load.p50_ms:7.1f} ms"
                    f"  p99 {load.p99_ms:7.1f} ms  errors {load.errors}",
                    file=sys.stderr,
                )


def rate(cell: dict[str, Any], name: str) -> float | None:
    return cell[name]["per_second"] if name in cell else None


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the rounds, and the ratios of the app's requests/s to each peer's, each
    computed within a round, then the median. The faster peer of a row is the one with the
    higher median requests/s."""
    summary: dict[str, Any] = {"load": {}}
    for key in ROUTES:
        measured = [r["load"][key] for r in rounds if key in r["load"]]
        for concurrency in dict.fromkeys(c for by_concurrency in measured for c in by_concurrency):
            cells = [by_c[concurrency] for by_c in measured if concurrency in by_c]
            row: dict[str, Any] = {
                name: median_load(cell[name] for cell in cells if name in cell)
                for name in SERVERS
                if any(name in cell for cell in cells)
            }
            row["ratio"] = {
                peer: median_ratio((rate(cell, "app"), rate(cell, peer)) for cell in cells)
                for peer in PEERS
            }
            peers = [peer for peer in PEERS if peer in row]
            faster = max(peers, key=lambda peer: row[peer]["per_second"], default=None)
            row["faster_peer"] = faster
            row["ratio"]["faster_peer"] = row["ratio"][faster] if faster else None
            summary["load"].setdefault(key, {})[concurrency] = row
    summary["rss_mb"] = {
        name: statistics.median(r["rss_mb"][name] for r in rounds) for name in SERVERS
    }
    return summary


# -- the report ------------------------------------------------------------------------------


def fmt_load(load: dict[str, Any] | None) -> str:
    if load is None:
        return "n/a"
    return f"{load['per_second']:.1f} ({load['p50_ms']:.1f} / {load['p99_ms']:.1f})"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def markdown(report: dict[str, Any]) -> str:
    summary, host, config, served = (
        report["median"], report["machine"], report["config"], report["served"]
    )  # fmt: skip
    detector, classifier = served["detector"], served["classifier"]
    checked = report["rounds"][0]["same_answers"]
    lines = [
        f"Run on {report['date']} with `{report['command']}` (rounds: {config['repeats']},"
        " each with the three servers started anew; in a round, each measurement after a"
        f" warm-up of {config['warmup_s']} s, {config['duration_s']} s long, with the other two"
        f" servers stopped). Machine: {host['cpu']}, {host['cores']} cores; Python"
        f" {host['python']}, ONNX Runtime {host['onnxruntime']}; load average"
        f" {' / '.join(map(str, report['load_before']))} before,"
        f" {' / '.join(map(str, report['load_after']))} after.",
        "",
        "Same answers, checked in every round before the load (labels equal; probabilities,"
        f" confidences and boxes within {TOLERANCE:g}): {checked['texts']} texts,"
        f" {checked['images']} images with {', '.join(map(str, checked['detections']))}"
        " detections.",
        "",
        f"Served: classifier version {classifier['version']}, detector version"
        f" {detector['version']}, ONNX Runtime with 1 intra-op thread for every batch of the app"
        f" and {config.get('peer_threads', 1)} for the peers'; batches of at most"
        f" {classifier['max_batch_size']} texts and {detector['max_batch_size']} images. The"
        " app alone (uvicorn, one process) with its defaults: under load the classifier's"
        f" batches wait up to {classifier['max_delay_ms']:g} ms for company, the detector's"
        f" {detector['max_delay_ms']:g} ms; a request that finds the detector idle runs on"
        f" {config.get('app_lone_threads', {}).get('detector') or 1} threads (`lone_threads`)."
        f" LitServe {report['versions']['litserve']}: one"
        f" inference worker per route and one API server, `batch_timeout`"
        f" {config['litserve_batch_timeout_ms']:g} ms. BentoML {report['versions']['bentoml']}:"
        " one worker per service (the JSON service and a batching service per model), adaptive"
        f" batching with `max_latency_ms` {config['bentoml_max_latency_ms']}.",
        "",
        "Requests/s (p50 / p99 ms), medians over the rounds; ratios of the app's requests/s,"
        " each computed within one round, then the median:",
        "",
        "| route | concurrency | app req/s (p50 / p99) | LitServe | BentoML | app / LitServe"
        " | app / BentoML | app / faster peer |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    all_routes = routes()
    for key, by_concurrency in summary["load"].items():
        for concurrency, row in by_concurrency.items():
            ratio, faster = row["ratio"], row["faster_peer"]
            versus = f" ({TITLES[faster]})" if faster else ""
            lines.append(
                f"| `{all_routes[key].label}` | {concurrency}"
                f" | {' | '.join(fmt_load(row.get(name)) for name in SERVERS)}"
                f" | {fmt_ratio(ratio['litserve'])} | {fmt_ratio(ratio['bentoml'])}"
                f" | **{fmt_ratio(ratio['faster_peer'])}**{versus} |"
            )
    errors = {
        name: sum(
            row[name]["errors"]
            for by_concurrency in summary["load"].values()
            for row in by_concurrency.values()
            if name in row
        )
        for name in SERVERS
    }
    rss = summary["rss_mb"]
    lines += [
        "",
        "Errors (non-200, socket errors, timeouts; all rounds): "
        + ", ".join(f"{TITLES[name]} {errors[name]}" for name in SERVERS)
        + ". RSS after the load (each server's process tree, median over the rounds): "
        + ", ".join(f"{TITLES[name]} {rss[name]:.0f} MB" for name in SERVERS)
        + ".",
    ]
    failures = [failure for r in report["rounds"] for failure in r["failures"]]
    if failures:
        lines += ["", f"{len(failures)} measurement(s) failed and are left out:", ""]
        lines += [f"- {failure}" for failure in failures]
    return "\n".join(lines) + "\n"


# -- main ------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", nargs="+", choices=ROUTES, default=list(ROUTES))
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each")
    parser.add_argument("--max-requests", type=int, default=100_000, help="cap per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; figures are medians")
    parser.add_argument("--models-dir", type=Path, default=MODELS_DIR)
    parser.add_argument(
        "--litserve-batch-timeout-ms", type=float, default=LITSERVE_BATCH_TIMEOUT_MS
    )
    parser.add_argument("--bentoml-max-latency-ms", type=int, default=BENTOML_MAX_LATENCY_MS)
    parser.add_argument(
        "--peer-threads",
        type=int,
        default=1,
        help="the peers' ONNX Runtime intra-op threads for every batch (the app's `threads`: 1)",
    )
    parser.add_argument("--json", type=Path, help="write every figure of every round here")
    parser.add_argument("--markdown", nargs="?", type=Path, const=DOC,
                        help="rewrite this file's generated peers section")  # fmt: skip
    args = parser.parse_args()
    if args.duration < 1 or args.warmup < 0 or args.max_requests < 1 or args.repeats < 1:
        parser.error("--duration, --max-requests and --repeats must be >= 1, --warmup >= 0")
    args.models_dir = args.models_dir.resolve()
    # The lowest concurrency first: a high one leaves BentoML's dispatcher waiting longer.
    args.concurrency = sorted(set(args.concurrency))
    return args


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: `scripts/install --bench` installs it")
    pythons = {peer: require_venv(peer) for peer in PEERS}
    # SIGTERM unwinds like Ctrl-C: every server started is stopped (and resumed first).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    report: dict[str, Any] = {
        "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "command": the_command(),
        "config": {
            "routes": args.routes,
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "max_requests": args.max_requests,
            "repeats": args.repeats,
            "litserve_batch_timeout_ms": args.litserve_batch_timeout_ms,
            "bentoml_max_latency_ms": args.bentoml_max_latency_ms,
            "peer_threads": args.peer_threads,
            "app_lone_threads": app_lone_threads(args.models_dir),
        },
        "machine": machine(),
        "versions": {
            "litserve": venv_package_version(pythons["litserve"], "litserve"),
            "bentoml": venv_package_version(pythons["bentoml"], "bentoml"),
        },
        "load_before": load_average(),
    }
    work = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    try:
        report["rounds"] = [one_round(i, args, work / str(i)) for i in range(args.repeats)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["load_after"] = load_average()
    report["served"] = report["rounds"][0]["served"]
    report["median"] = summarize(report["rounds"])
    section = markdown(report)
    print(section)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        write_section(args.markdown, section, BEGIN_MARKER, END_MARKER)
        print(f"wrote the generated section of {args.markdown}", file=sys.stderr)


if __name__ == "__main__":
    main()
