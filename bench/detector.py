"""Detector throughput: ONNX Runtime vs the TensorFlow runtime, same version, same run.

    .venv/bin/python bench/detector.py [--version N] [--threads 2] [--seconds 10]
    .venv/bin/python bench/detector.py --versions [--threads 1 --batch 4] [--layout clutter]

`--versions`: the whole `detect()` path of every published version with ONNX Runtime, at the
service's settings (one intra-op thread, the app's detector batch of 4) on held-out `photos`
images of 256-512 pixels, versions taking turns; ratios against version 1 measured in the
same run. A reading version's path includes its proposals, crops and reader.

Times the raw model call (`LoadedModel.predict`) on letterboxed generated `hard` images at
batch 1 and 32, then the whole `modelkit.detection.detect` path (letterbox + model + decoding +
NMS) at batch 32. The two runtimes alternate in short rounds. Prints images/s and per-batch
p50/p99 latency for each runtime, and the ONNX Runtime / TensorFlow ratio.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from modelkit import load_model
from modelkit.detection import detect, to_model_input
from training.detector.dataset import generate

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def time_calls(
    calls: dict[str, Callable[[], object]], batch: int, seconds: float, rounds: int = 5
) -> dict[str, dict[str, float]]:
    """Per name: images/s and latency percentiles over about `seconds` of calls.

    The callers take turns in short rounds, so a change in the machine's load during the run
    (it is shared) weighs on all of them alike and the ratio stays fair.
    """
    latencies: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        for _ in range(3):
            call()
    for _ in range(rounds):
        for name, call in calls.items():
            deadline = time.perf_counter() + seconds / rounds
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                call()
                latencies[name].append(time.perf_counter() - start)
    results = {}
    for name, values in latencies.items():
        values_ms = np.array(values) * 1000
        results[name] = {
            "images_per_s": batch * len(values_ms) / (values_ms.sum() / 1000),
            "p50_ms": float(np.percentile(values_ms, 50)),
            "p99_ms": float(np.percentile(values_ms, 99)),
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=MODELS_DIR)
    parser.add_argument("--version", type=int)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--versions", action="store_true", help="compare every version")
    parser.add_argument("--batch", type=int, default=4, help="with --versions")
    parser.add_argument(
        "--layout", default="photos", help="with --versions: the held-out images (e.g. clutter)"
    )
    args = parser.parse_args()
    if args.versions:
        compare_versions(args)
        return

    images = [sample.image for sample in generate("hard", 32, seed=0, purpose="validation")]
    runtimes = ("onnxruntime", "tensorflow")
    models = {
        runtime: load_model(
            args.models, "detector", args.version, runtime=runtime, threads=args.threads
        )
        for runtime in runtimes
    }
    model = models["onnxruntime"]
    size = model.contract.detection.input_size
    batch, _ = to_model_input(images, size)
    results: dict[tuple[str, str], dict[str, float]] = {}
    for batch_size in (1, 32):
        inputs = batch[:batch_size]
        timed = time_calls(
            {name: (lambda m=m, x=inputs: m.predict(x)) for name, m in models.items()},
            batch_size,
            args.seconds,
        )
        for runtime, result in timed.items():
            results[runtime, f"model, batch {batch_size}"] = result
    timed = time_calls(
        {name: (lambda m=m: detect(images, m)) for name, m in models.items()}, 32, args.seconds
    )
    for runtime, result in timed.items():
        results[runtime, "detect(), batch 32"] = result

    print(
        f"detector v{model.version}: input {size}x{size}, {args.threads} threads, "
        f"load average {os.getloadavg()[0]:.2f} (1 min) at the end"
    )
    print(f"{'runtime':<12} {'measured':<20} {'images/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for (runtime, what), r in results.items():
        print(
            f"{runtime:<12} {what:<20} {r['images_per_s']:9.1f} {r['p50_ms']:8.2f} "
            f"{r['p99_ms']:8.2f}"
        )
    for what in ("model, batch 1", "model, batch 32", "detect(), batch 32"):
        ratio = (
            results["onnxruntime", what]["images_per_s"]
            / results["tensorflow", what]["images_per_s"]
        )
        print(f"ONNX Runtime / TensorFlow, {what}: {ratio:.2f}x")


def compare_versions(args: argparse.Namespace) -> None:
    from modelkit.repository import list_versions

    threads = 1 if args.threads == os.cpu_count() else args.threads
    images = [s.image for s in generate(args.layout, args.batch * 8, seed=2024, purpose="eval")]
    batches = [images[i : i + args.batch] for i in range(0, len(images), args.batch)]
    calls = {}
    for version in list_versions(args.models, "detector"):
        model = load_model(args.models, "detector", version, threads=threads)
        reader, detection = None, model.contract.detection
        if detection.reader:
            reader = load_model(
                args.models, "detector", version, signature=detection.reader, threads=1
            )
        state = {"next": 0}

        def call(model=model, reader=reader, state=state) -> None:
            chunk = batches[state["next"] % len(batches)]
            state["next"] += 1
            detect(chunk, model, reader=reader)

        calls[f"v{version}"] = call
    timed = time_calls(calls, args.batch, args.seconds * len(calls))
    print(
        f"detect() path, ONNX Runtime, {threads} intra-op thread(s), batch {args.batch}, "
        f"held-out {args.layout} 256-512 px; load average {os.getloadavg()[0]:.2f} at the end"
    )
    print(f"{'version':<8} {'images/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs v1':>7}")
    base = timed["v1"]["images_per_s"]
    for name, r in timed.items():
        print(
            f"{name:<8} {r['images_per_s']:9.1f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} "
            f"{r['images_per_s'] / base:6.2f}x"
        )


if __name__ == "__main__":
    main()
