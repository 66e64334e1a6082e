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
        "proposal_threshold": 0.01, "max_proposals": 48,  # the version's, when not tried
        "objectness_weight": best["objectness_weight"],
        "confidence_threshold": best["confidence_threshold"],
    }  # fmt: skip
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


def test_more_proposals_find_more_of_a_pages_words(version_3):
    grid, reader = version_3
    result = tune(
        grid, reader, weights=(1.0,), thresholds=(0.3,), count=6, layouts=("clutter",),
        proposals=[(0.01, 4), (0.01, 48)],
    )  # fmt: skip
    few, many = result["rows"]
    assert (few["max_proposals"], many["max_proposals"]) == (4, 48)
    assert few["sets"]["clutter"]["recall"] < many["sets"]["clutter"]["recall"]
    assert few["images_per_second"] > 0


def test_the_tune_command_prints_the_table(capsys):
    main(["tune", "--version", "3", "--count", "2", "--weights", "1,0.5", "--thresholds", "0.4",
          "--max-proposals", "24,48"])  # fmt: skip
    out = capsys.readouterr().out
    assert "'max_proposals': 48, 'objectness_weight': 1.0, 'confidence_threshold': 0.4}" in out
    assert out.count("| 0.4 |") + out.count("| **0.4** |") == 4 and "best mean F1" in out
    assert out.count("| 0.01, 24 |") + out.count("| **0.01, 24** |") == 2
    with pytest.raises(SystemExit):
        main(["tune", "--version", "3", "--weights", "a,b"])
