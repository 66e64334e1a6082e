"""bench/serving.py --classifier-versions: each version served alone, ratios per round."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.serving import format_version_comparison
from tests.harness import PROJECT_ROOT

MEASURES = [
    "in-process batch 1 (µs/text)",
    "in-process batch 32 (µs/text)",
    "in-process batch 32, article (µs/text)",
    "app c=1 (req/s)",
    "app c=32 (req/s)",
]


def test_cost_ratios_are_taken_within_each_round_and_point_the_same_way() -> None:
    rounds = [
        {"2": dict.fromkeys(MEASURES, 100.0), "3": dict.fromkeys(MEASURES, 100.0)},
        {"2": dict.fromkeys(MEASURES, 50.0), "3": dict.fromkeys(MEASURES, 100.0)},
        {"2": dict.fromkeys(MEASURES, 100.0), "3": dict.fromkeys(MEASURES, 150.0)},
    ]
    table = format_version_comparison({"versions": [2, 3], "rounds": rounds})
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()[2:]}
    # µs per text: 1.0, 2.0, 1.5 -> median 1.5; req/s inverted: 1.0, 0.5, 0.67 -> 0.67.
    assert rows["in-process batch 1 (µs/text)"].endswith("| 1.50x |")
    assert rows["app c=32 (req/s)"].endswith("| 0.67x |")
    assert "| measure | version 2 | version 3 | cost 3 / 2 |" in table


@pytest.mark.slow
def test_compares_two_committed_classifier_versions(tmp_path: Path) -> None:
    out = tmp_path / "comparison.json"
    completed = subprocess.run(
        [
            sys.executable, "bench/serving.py", "--classifier-versions", "1", "2",
            "--duration", "0.4", "--rounds", "1", "--max-requests", "200", "--json", str(out),
        ],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "| measure | version 1 | version 2 | cost 2 / 1 |" in completed.stdout
    (figures,) = json.loads(out.read_text())["rounds"]
    for version in ("1", "2"):
        assert list(figures[version]) == MEASURES
        assert all(value > 0 for value in figures[version].values())


@pytest.mark.slow
def test_op_profile_shows_where_a_versions_time_goes(tmp_path: Path) -> None:
    out = tmp_path / "profile.json"
    completed = subprocess.run(
        [sys.executable, "bench/serving.py", "--op-profile", "2", "--runs", "5",
         "--json", str(out)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "| op | µs per batch | share |" in completed.stdout
    profile = json.loads(out.read_text())
    per_op = profile["microseconds_per_batch"]
    # Version 2's dense first layer: one matrix product (fused with its bias and relu) is
    # nearly all of the time.
    assert max(per_op, key=per_op.get) in ("FusedGemm", "Gemm", "MatMul")
    assert profile["batch"] == 32 and profile["terms_per_text"] > 100
