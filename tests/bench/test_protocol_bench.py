"""bench/protocol.py: MLServer's repository is the app's models at the app's batching, and the
report's ratios are taken within each run. (The full run needs .venv-mlserver and is by hand.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.protocol import MAX_BATCH_SIZE, MAX_DELAY_MS, median_report, mlserver_repository, routes
from modelkit import load_model
from tests.conftest import MODELS_DIR


def test_mlserver_serves_the_apps_onnx_files_with_the_same_batching(tmp_path: Path) -> None:
    root = mlserver_repository(tmp_path, MODELS_DIR)
    for name in ("vae", "classifier"):
        settings = json.loads((root / name / "model-settings.json").read_text())
        model = load_model(MODELS_DIR, name, verify=False)
        assert settings["parameters"]["uri"] == str(model.path / "model.onnx")
        assert settings["parameters"]["version"] == str(model.version)  # the served version
        assert (settings["max_batch_size"], settings["max_batch_time"]) == (
            MAX_BATCH_SIZE, MAX_DELAY_MS / 1000,
        )  # fmt: skip
        assert (root / name / "onnx_runtime.py").is_file()
    extra = json.loads((root / "classifier" / "model-settings.json").read_text())["parameters"]
    assert extra["extra"]["vectorizer"].endswith("vectorizer.json")


def _run(app: float, mlserver: float) -> dict:
    load = {"p50_ms": 1.0, "p99_ms": 2.0, "errors": 0}
    cell = {"app": {**load, "per_second": app}, "mlserver": {**load, "per_second": mlserver}}
    run = {key: {"1": cell} for key in routes()}
    return {**run, "rss_mb": {"app": 100.0, "mlserver": 300.0}}


def test_ratios_are_medians_of_per_run_ratios() -> None:
    summary = median_report([_run(100, 50), _run(300, 200), _run(90, 100)])
    assert summary["vae"]["1"]["ratio"] == pytest.approx(1.5)  # median of 2.0, 1.5, 0.9
    assert summary["vae"]["1"]["app"]["per_second"] == 100
