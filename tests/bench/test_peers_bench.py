"""bench/peers.py: the app against LitServe and BentoML.

Without servers: the medians and the ratios (each within a round, then the median; the faster
peer by its median requests/s), the comparison of answers, and the peers' steps around the
models (bench/peers/peer_models.py) against the app's own functions on the same inputs.
Marked `slow`: the real script on one route, 1-second measurements, when the peers'
environments exist (`scripts/install --peers`).
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from bench.peers import (
    PEERS_DIR,
    SERVERS,
    TEXTS,
    VENVS,
    check_bodies,
    differences,
    markdown,
    peer_env,
    rotated,
    summarize,
)
from bench.serving import detector_image
from tests.conftest import MODELS_DIR, PROJECT_ROOT

SERVED = {
    "classifier": {"version": 2, "max_batch_size": 32, "max_delay_ms": 2.0},
    "detector": {"version": 5, "max_batch_size": 4, "max_delay_ms": 2.0},
}


def _load(per_second: float, errors: int = 0) -> dict[str, Any]:
    return {"per_second": per_second, "p50_ms": 1000 / per_second, "p99_ms": 2000 / per_second,
            "errors": errors, "capped": False}  # fmt: skip


def _round(app: float, litserve: float, bentoml: float, index: int = 0) -> dict[str, Any]:
    cell = {"app": _load(app), "litserve": _load(litserve), "bentoml": _load(bentoml, 1)}
    return {
        "order": rotated(index),
        "load": {"classify": {"1": cell}},
        "rss_mb": {"app": 100.0 + index, "litserve": 300.0, "bentoml": 500.0},
        "same_answers": {"texts": 5, "images": 3, "detections": [2, 2, 0]},
        "failures": [],
    }


def test_ratios_are_medians_of_the_ratios_within_each_round() -> None:
    rounds = [_round(100, 50, 80, 0), _round(300, 100, 200, 1), _round(90, 100, 30, 2)]
    row = summarize(rounds)["load"]["classify"]["1"]
    assert row["ratio"]["litserve"] == pytest.approx(2.0)  # median of 2.0, 3.0, 0.9
    assert row["ratio"]["bentoml"] == pytest.approx(1.5)  # median of 1.25, 1.5, 3.0
    # The faster peer: the higher median req/s, LitServe's 100 against BentoML's 80.
    assert row["faster_peer"] == "litserve"
    assert row["ratio"]["faster_peer"] == row["ratio"]["litserve"]
    assert row["app"]["per_second"] == 100 and row["litserve"]["per_second"] == 100
    assert row["bentoml"]["errors"] == 3  # the sum over the rounds


def test_the_faster_peer_is_the_one_with_the_higher_median() -> None:
    rounds = [_round(100, 150, 80, i) for i in range(3)]
    summary = summarize(rounds)
    row = summary["load"]["classify"]["1"]
    assert row["faster_peer"] == "litserve"
    assert row["ratio"]["faster_peer"] == pytest.approx(100 / 150)
    assert summary["rss_mb"]["app"] == 101.0  # median over the rounds
    text = markdown(_report(rounds, summary))
    assert "| `POST /classify` | 1 | 100.0 (10.0 / 20.0) | 150.0 (6.7 / 13.3) |" in text
    assert "**0.67x** (LitServe) |" in text
    assert "timeouts; all rounds): app 0, LitServe 0, BentoML 3." in text


def test_a_failed_measurement_is_left_out_of_the_medians_and_listed() -> None:
    rounds = [_round(100, 50, 80, i) for i in range(3)]
    del rounds[1]["load"]["classify"]["1"]["litserve"]
    rounds[1]["failures"].append("round 2 litserve POST /classify c=1: wrk failed")
    summary = summarize(rounds)
    row = summary["load"]["classify"]["1"]
    assert row["ratio"]["litserve"] == pytest.approx(2.0)  # from the two rounds that have it
    assert row["ratio"]["bentoml"] == pytest.approx(1.25)
    assert row["faster_peer"] == "bentoml"
    assert "- round 2 litserve POST /classify c=1: wrk failed" in markdown(_report(rounds, summary))


def _report(rounds: list[dict[str, Any]], summary: dict[str, Any]) -> dict[str, Any]:
    return {
        "date": "today", "command": "bench/peers.py", "rounds": rounds, "median": summary,
        "machine": {"cpu": "cpu", "cores": 2, "python": "3.11", "onnxruntime": "1"},
        "config": {"repeats": 3, "duration_s": 10, "warmup_s": 2,
                   "litserve_batch_timeout_ms": 2.0, "bentoml_max_latency_ms": 10_000},
        "served": SERVED, "versions": {"litserve": "0.2.19", "bentoml": "1.4.40"},
        "load_before": [1, 1, 1], "load_after": [1, 1, 1],
    }  # fmt: skip


def test_each_server_goes_first_in_turn() -> None:
    assert [rotated(i)[0] for i in range(3)] == list(SERVERS)
    assert all(sorted(rotated(i)) == sorted(SERVERS) for i in range(5))


def test_answers_differ_on_labels_shapes_and_numbers_past_the_tolerance() -> None:
    answer = {"detections": [{"label": "chat", "confidence": 0.9, "box": {"x_min": 1.0}}]}
    close = {"detections": [{"label": "chat", "confidence": 0.90005, "box": {"x_min": 1}}]}
    assert differences(answer, close) == []
    far = {"detections": [{"label": "rat", "confidence": 0.9002, "box": {"x_min": 1.0}}]}
    assert differences(answer, far) == [
        ".detections[0].label: 'chat' != 'rat'",
        ".detections[0].confidence: 0.9 != 0.9002",
    ]
    assert differences(answer, {"detections": []}) == [".detections: 1 items != 0"]
    assert differences({"a": True}, {"a": 1}) != []  # a boolean is not a number here


def test_the_check_covers_five_texts_and_three_images_of_different_sizes() -> None:
    from PIL import Image

    bodies = check_bodies()
    assert [path for path, _ in bodies] == ["/classify"] * 5 + ["/detect"] * 3
    images = [base64.b64decode(json.loads(body)["image"]) for _, body in bodies[5:]]
    sizes = {Image.open(io.BytesIO(image)).size for image in images}
    assert len(sizes) == 3 and (128, 128) in sizes and (320, 240) in sizes
    assert len({json.loads(body)["text"] for _, body in bodies[:5]}) == 5


def test_peers_get_the_apps_versions_and_batch_sizes() -> None:
    env = peer_env(SERVED, MODELS_DIR)
    assert env["PYTHONPATH"] == str(PROJECT_ROOT)
    assert (env["PEERS_DETECTOR_VERSION"], env["PEERS_DETECTOR_MAX_BATCH_SIZE"]) == ("5", "4")
    assert env["PEERS_CLASSIFIER_MAX_BATCH_SIZE"] == "32"


# -- the peers' steps against the app's, in process -------------------------------------------


@pytest.fixture
def peer_models(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """bench/peers/peer_models.py (a file the peer servers import as a top-level module),
    serving the newest versions as the app does by default."""
    from modelkit.repository import latest_version

    monkeypatch.setenv("PEERS_MODELS_DIR", str(MODELS_DIR))
    for name in ("classifier", "detector"):
        monkeypatch.setenv(f"PEERS_{name.upper()}_VERSION", str(latest_version(MODELS_DIR, name)))
        monkeypatch.setenv(f"PEERS_{name.upper()}_MAX_BATCH_SIZE", "4")
    spec = importlib.util.spec_from_file_location("peer_models", PEERS_DIR / "peer_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "peer_models", module)  # as the peers import it
    spec.loader.exec_module(module)
    return module


def test_the_peers_classify_as_the_app(peer_models: ModuleType) -> None:
    from app.classification import top_categories

    model, vectorizer = peer_models.classifier()
    texts = [text for text, _ in TEXTS]
    probabilities = model.predict(vectorizer.transform(texts))
    labels = list(model.contract.class_labels)
    for top_k in (1, 3, 5):
        ours = top_categories(probabilities, labels, top_k)
        for row, categories in zip(probabilities, ours, strict=True):
            answer = peer_models.classify_answer(model.contract, row, top_k)
            assert answer["predictions"] == [{"categories": categories}]
            assert answer["model"] == {"name": "classifier", "version": model.version}


def test_the_peers_detect_as_the_app(peer_models: ModuleType) -> None:
    from app.detection import (
        DetectionParameters,
        decode_detections,
        detection_json,
        load_reader,
        prepare_image,
    )

    model = peer_models.detector()
    reader = peer_models.reader(model.contract)
    settings = model.contract.detection
    parameters = DetectionParameters(settings.confidence_threshold, settings.nms_iou_threshold, 100)
    found = 0
    for size in ((128, 128), (320, 240), (200, 300)):
        data = detector_image(*size)
        theirs = peer_models.prepare_image(base64.b64encode(data).decode(), settings.input_size)
        ours = prepare_image(data, 25_000_000, settings.input_size)
        np.testing.assert_array_equal(theirs.rows, ours.rows)
        sent = peer_models.from_pixels(peer_models.to_pixels(theirs.rows))  # BentoML's way
        assert sent.dtype == ours.rows.dtype and np.array_equal(sent, ours.rows)
        (grid,) = model.predict(theirs.rows)
        expected = decode_detections(grid, ours, settings, parameters, load_reader(model))
        answer = peer_models.detect_answer(model.contract, theirs, grid, reader)
        assert answer["detections"] == [detection_json(d) for d in expected]
        assert answer["image"] == {"width": size[0], "height": size[1]}
        found += len(expected)
    assert found > 0  # the comparison covered detections, not only empty lists


# -- the real thing ----------------------------------------------------------------------------


@pytest.mark.slow
def test_three_servers_answer_alike_and_serve_load(tmp_path: Path) -> None:
    missing = [str(venv) for venv in VENVS.values() if not (venv / "bin" / "python").exists()]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: `scripts/install --peers` makes them")
    if shutil.which("wrk") is None:
        reason = "wrk is not installed (scripts/install --bench)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    doc = tmp_path / "benchmarks.md"
    doc.write_text(
        "kept above\n<!-- bench/peers.py: begin (generated; do not edit by hand) -->\n"
        "(not yet run)\n<!-- bench/peers.py: end -->\nkept below\n"
    )
    out = tmp_path / "peers.json"
    command = [
        *(sys.executable, "bench/peers.py", "--routes", "classify", "--concurrency", "1"),
        *("--duration", "1", "--warmup", "1", "--repeats", "1"),
        *("--json", str(out), "--markdown", str(doc)),
    ]
    result = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    report = json.loads(out.read_text())
    (round_,) = report["rounds"]
    # Both models were checked (the servers serve both), with detections and without.
    checked = round_["same_answers"]
    assert (checked["texts"], checked["images"]) == (5, 3)
    assert max(checked["detections"]) > 0 and 0 in checked["detections"]
    assert round_["served"]["detector"]["max_batch_size"] == 4  # the app's, given to the peers
    assert round_["failures"] == []
    for server in SERVERS:
        load = round_["load"]["classify"]["1"][server]
        assert load["per_second"] > 0 and load["errors"] == 0, (server, load)
        assert 10 < round_["rss_mb"][server] < 4000, (server, round_["rss_mb"])
    assert report["median"]["load"]["classify"]["1"]["ratio"]["faster_peer"] > 0
    text = doc.read_text()
    assert text.startswith("kept above\n<!-- bench/peers.py: begin")
    assert text.endswith("<!-- bench/peers.py: end -->\nkept below\n")
    assert "(not yet run)" not in text and "| `POST /classify` | 1 |" in text
