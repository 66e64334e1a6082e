"""training.detector.tuning: serving settings chosen on validation scenes."""

from pathlib import Path

import pytest

from modelkit import load_model
from training.detector.__main__ import main
from training.detector.tuning import format_tuning, tune

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture(scope="module")
def version_3():
    grid = load_model(MODELS, "detector", 3)
    return grid, load_model(MODELS, "detector", 3, signature="reader")


def test_tune_reads_every_setting_and_picks_the_best_mean_f1(version_3):
    grid, reader = version_3
    result = tune(grid, reader, weights=(1.0, 0.0), thresholds=(0.3, 0.95), count=4)
    assert result["purpose"] == "validation" and result["images_per_set"] == 4
    rows = result["rows"]
    assert [(r["objectness_weight"], r["confidence_threshold"]) for r in rows] == [
        (1.0, 0.3), (1.0, 0.95), (0.0, 0.3), (0.0, 0.95),
    ]  # fmt: skip
    best = max(rows, key=lambda r: r["mean_f1"])
    assert result["chosen"] == {
        "objectness_weight": best["objectness_weight"],
        "confidence_threshold": best["confidence_threshold"],
    }
    for first, second in ((rows[0], rows[1]), (rows[2], rows[3])):
        for layout in ("photos", "clutter", "lookalikes"):
            low, high = first["sets"][layout], second["sets"][layout]
            assert low["map50"] == high["map50"]  # the weight ranks; the threshold only reads
            assert high["recall"] <= low["recall"]
    # The weight changes the scores: at 0.95, the product keeps fewer words than the reader.
    assert sum(r["sets"][s]["recall"] for r in rows[1:2] for s in r["sets"]) < sum(
        r["sets"][s]["recall"] for r in rows[3:4] for s in r["sets"]
    )
    assert grid.metadata["detection"].get("objectness_weight", 1.0) == 1.0  # left as it was
    table = format_tuning(result)
    assert table.count("\n") == 1 + len(rows) and "**" in table


def test_the_tune_command_prints_the_table(capsys):
    main(["tune", "--version", "3", "--count", "2", "--weights", "1,0.5", "--thresholds", "0.4"])
    out = capsys.readouterr().out
    assert "served: {'objectness_weight': 1.0, 'confidence_threshold': 0.4}" in out
    assert out.count("| 0.4 |") + out.count("| **0.4** |") == 2 and "best mean F1" in out
    with pytest.raises(SystemExit):
        main(["tune", "--version", "3", "--weights", "a,b"])
