"""bench/profile.py: samples are charged to what they are doing, waits are kept apart, and the
per-request figures add up to the CPU time /proc counted; a short real run profiles the app."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.profile import PY_SPY, UNSAMPLED, Profile, category, read_collapsed
from tests.harness import PROJECT_ROOT

LOOP = "MainThread (1);<module> (app.py:1);Runner.run (asyncio/runners.py:118)"
HANDLER = "dispatch (uvicorn/protocols/http/httptools_impl.py:400);classify (app/routes/c.py:9)"


def test_a_sample_is_charged_to_its_most_telling_frame() -> None:
    model = ["worker (threading.py:1)", "run (onnxruntime/capi/session.py:406)"]
    assert category(model) == "model (ONNX Runtime)"
    png = ["answer (app/routes/vae.py:1)", "encode_gray_png (app/images.py:90)", "crc (zlib:1)"]
    assert category(png) == "PNG encoding"
    assert category(HANDLER.split(";")) == "HTTP server (uvicorn, starlette routing)"
    assert category(["_worker (concurrent/futures/thread.py:81)"]).startswith("worker thread")
    assert category(["x (nowhere.py:1)"]) == "other"


def test_waits_are_apart_and_the_figures_add_up_to_procs_cpu(tmp_path: Path) -> None:
    stacks = tmp_path / "raw.txt"
    stacks.write_text(
        f"{LOOP} 300\n"  # the event loop inside uvloop: waiting, not work
        f"MainThread (1);{HANDLER} 40\n"
        "Worker (2);run (onnxruntime/capi/session.py:406) 160\n"
    )
    profile = Profile("classify", requests=100, seconds=1.0, cpu_s=0.6, concurrency=1)
    read_collapsed(stacks, profile)
    assert profile.samples == 500 and profile.working_samples == 200
    figures = profile.breakdown()
    # 160 samples at 400 Hz over 100 requests: 4 ms per request
    assert figures["model (ONNX Runtime)"] == pytest.approx(4.0)
    assert figures["HTTP server (uvicorn, starlette routing)"] == pytest.approx(1.0)
    assert sum(figures.values()) == pytest.approx(profile.cpu_ms_per_request)  # 6 ms
    assert figures[UNSAMPLED] == pytest.approx(1.0)


@pytest.mark.slow
def test_profiles_the_running_app(tmp_path: Path) -> None:
    if shutil.which("wrk") is None or not PY_SPY.exists():
        pytest.skip("needs wrk (scripts/install --bench) and py-spy (the dev extras)")
    out = tmp_path / "figures.json"
    subprocess.run(
        [sys.executable, "bench/profile.py", "--routes", "classify", "--seconds", "2",
         "--json", str(out)],
        cwd=PROJECT_ROOT, check=True, timeout=180, capture_output=True,
    )  # fmt: skip
    (figures,) = json.loads(out.read_text())
    assert figures["requests"] > 50
    assert figures["cpu_ms_per_request"] > 0
    assert figures["by_category_ms"]["tf-idf vectorizer"] > 0  # the route's own work was seen
    assert figures["by_category_ms"]["HTTP server (uvicorn, starlette routing)"] > 0
