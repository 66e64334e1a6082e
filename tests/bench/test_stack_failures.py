"""bench/stack.py: one failed measurement is reported in the run and the report, and the rest
of the run goes on (a fresh clone's `make bench` once died on one missing pid)."""

from __future__ import annotations

import argparse
import contextlib
import subprocess
from pathlib import Path

import pytest

from bench import stack as bench
from bench.stack import Load, Running


class _Stack:
    process = None


@contextlib.contextmanager
def _fake_launch(variant, base, models_dir, app_env=None):
    if variant.key == "no-cache":
        raise RuntimeError("the gateway did not become ready")
    yield Running(_Stack(), "token", 1.5, None)


def _measure(running, route, concurrency, args, work):
    if route.key == "vae" and concurrency == 32:
        raise subprocess.CalledProcessError(1, ["wrk"], "wrk died")
    return Load(100, 1.0, False, 0, 1.0, 2.0, 0.1)


def _rss(running):
    raise ValueError("'pid' is not in list")  # what `make bench` once died on


def test_failures_are_reported_and_the_run_goes_on(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(bench, "launched", _fake_launch)
    monkeypatch.setattr(bench, "measure", _measure)
    monkeypatch.setattr(bench, "programs_rss", _rss)
    monkeypatch.setattr(bench, "served_versions", lambda running: {"vae": 2})
    args = argparse.Namespace(
        variants=["gateway", "no-cache", "no-auth"], routes=["classify", "vae"],
        concurrency=[1, 32], models_dir=tmp_path, detector_version=None,
    )  # fmt: skip
    run = bench.one_run(args, tmp_path, 0)
    # Everything that could be measured was; the rest is named.
    assert set(run["variants"]) == {"gateway", "no-auth"}
    assert set(run["variants"]["gateway"]["load"]["vae"]) == {"1"}
    assert set(run["variants"]["gateway"]["load"]["classify"]) == {"1", "32"}
    failures = "\n".join(run["failures"])
    assert "no-cache: RuntimeError: the gateway did not become ready" in failures
    assert "gateway GET /vae/sample?n=16 c=32: CalledProcessError" in failures
    assert "gateway RSS at rest: ValueError" in failures
    # ... and the report still renders, with the failures listed.
    report = {
        "date": "today", "command": "bench/stack.py", "runs": [run],
        "config": {"repeats": 1, "duration_s": 1, "warmup_s": 0, "max_requests": 10},
        "machine": {"cpu": "cpu", "cores": 2, "memory_gb": 1, "kernel": "k", "python": "3",
                    "nginx": "n", "onnxruntime": "o", "wrk": "w"},
        "load_before": [0, 0, 0], "load_after": [0, 0, 0],
        "training_processes_before": 0, "training_processes_after": 0,
    }  # fmt: skip
    report["median"] = bench.summarize(report["runs"])
    text = bench.markdown(report)
    assert f"{len(run['failures'])} measurement(s) failed" in text
    assert "| `POST /classify` | 32 | 100.0 |" in text


@pytest.mark.parametrize("error", [OSError("x"), subprocess.TimeoutExpired(["wrk"], 5)])
def test_what_counts_as_a_failed_measurement(error) -> None:
    assert isinstance(error, bench.MEASUREMENT_ERRORS)


def _loads(per_second: float, p50_ms: float) -> dict:
    load = {"per_second": per_second, "p50_ms": p50_ms, "p99_ms": 2 * p50_ms, "errors": 0}
    return {"classify": {"1": load, "32": {**load, "per_second": 4 * per_second}}}


def test_a_setting_is_reported_against_the_defaults_and_latency_bars_are_checked() -> None:
    """The deployment-setting variants (workers-2, delay-N) get a ratio over `gateway` taken
    within the run, and the report checks the c=1 latency bars of issue 15."""
    run = {
        "variants": {
            "gateway": {"load": _loads(100.0, 2.5)},
            "workers-2": {"load": _loads(150.0, 2.0)},
            "no-auth": {"load": _loads(110.0, 2.0)},  # not a setting: no ratio of its own
        },
        "failures": [],
    }
    found = bench.ratios(run)["settings_over_gateway"]
    assert found == {"workers-2": {"classify": {"1": 1.5, "32": 1.5}}}
    summary = {"variants": run["variants"], "ratios": {"settings_over_gateway": found}}
    table = "\n".join(bench.settings_table(summary))
    assert "| `POST /classify` | 32 | 400.0 (2.5 / 5.0) | 600.0 (2.0 / 4.0) | 1.50x |" in table
    summary["ratios"] |= {
        "cached_over_no_auth": {}, "classify_over_naive_c32": None, "detect_over_raw_batch32": None,
    }  # fmt: skip
    bars = "\n".join(bench.targets(summary))
    assert "`POST /classify` at c=1: p50 <= 3 ms through the gateway | **2.5 ms** | met" in bars
    run["variants"]["gateway"]["load"]["classify"]["1"]["p50_ms"] = 3.5
    assert "**3.5 ms** | not met" in "\n".join(bench.targets(summary))
