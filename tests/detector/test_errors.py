"""training.detector.errors: a reading version's misses and false positives, explained."""

from pathlib import Path

import numpy as np

from modelkit import load_model
from training.detector.__main__ import main
from training.detector.dataset import generate
from training.detector.errors import error_report

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_every_target_and_false_positive_is_accounted_for_with_the_word_under_it():
    # Version 2 misreads look-alikes often (0.7 an image): a few scenes show some.
    grid = load_model(MODELS, "detector", 2)
    reader = load_model(MODELS, "detector", 2, signature="reader")
    samples = list(generate("lookalikes", 8, seed=3, purpose="validation"))
    report = error_report(grid, reader, samples)
    counts = report["counts"]
    assert counts["targets"] == sum(len(s.boxes) for s in samples)
    assert counts["targets"] == counts.get("found", 0) + counts.get(
        "missed with a proposal", 0
    ) + counts.get("missed without a proposal", 0)
    words = report["false_positives_by_word"]
    assert sum(words.values()) == counts["false positives"] > 0
    written = {w.lower() for s in samples for w in s.other_words}
    named = {w.removesuffix("(part)") for w in words if not w.startswith("<")}
    assert named and named <= written  # each is a word drawn in those scenes
    assert len(report["unproposed_heights_px"]) == counts.get("missed without a proposal", 0)


def test_scenes_name_their_other_words_in_box_order():
    (sample,) = generate("lookalikes", 1, seed=5, purpose="validation")
    assert len(sample.other_words) == len(sample.others) > 0
    assert all(isinstance(word, str) and word for word in sample.other_words)
    assert np.all(sample.others[:, 2] > sample.others[:, 0])


def test_the_errors_command_prints_a_report(capsys):
    main(["errors", "--version", "4", "--sets", "lookalikes", "--count", "3"])
    out = capsys.readouterr().out
    assert "lookalikes: 3 images" in out and "false positives on:" in out
