"""Choosing a reading detector's serving settings on validation scenes, never the evaluation's.

Two settings are chosen here: `objectness_weight`, how much the grid's objectness counts in a
detection's score (objectness ** weight x the reader's probability), and the service's
`confidence_threshold`. The weight changes the ranking, so mAP; the threshold only where
precision, recall and false positives are read. So each weight's detections are computed once
on the validation sets (at the evaluation's lowest threshold), and each threshold is read from
them. The pick is the pair with the best mean F1 over the sets: one number that pays for
missed words and for false ones alike, as a user of `POST /detect` does.

The scenes are of purpose "validation" (train-group photos and fonts) with their own seed:
neither the training scenes nor the evaluation's or the test set's.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from modelkit.detection import GridModel
from training.detector import evaluate
from training.detector.dataset import generate

TUNING_SETS = ("photos", "clutter", "lookalikes")
TUNING_SEED = 7
TUNING_COUNT = 250
WEIGHTS = (1.0, 0.5, 0.25, 0.0)
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


class WithSettings:
    """A model seen with other detection settings (its own metadata is left as it is)."""

    def __init__(self, model: GridModel, **detection: Any) -> None:
        self.model = model
        self.metadata = copy.deepcopy(model.metadata)
        self.metadata["detection"].update(detection)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        return self.model.predict(inputs)


class KerasSignature:
    """A Keras model with the metadata `modelkit.detection.detect` reads (a run not yet
    exported)."""

    def __init__(self, model, detection: dict[str, Any]) -> None:
        self.model = model
        self.metadata = {"detection": detection}

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        import keras

        return keras.ops.convert_to_numpy(self.model(inputs, training=False))


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def tune(
    grid: GridModel,
    reader: GridModel,
    weights: Sequence[float] = WEIGHTS,
    thresholds: Sequence[float] = THRESHOLDS,
    count: int = TUNING_COUNT,
    seed: int = TUNING_SEED,
    layouts: Sequence[str] = TUNING_SETS,
) -> dict[str, Any]:
    """Every (weight, threshold) on the validation sets, and the pick (`chosen`)."""
    sets = {layout: list(generate(layout, count, seed, purpose="validation")) for layout in layouts}
    rows = []
    for weight in weights:
        detector = evaluate.reading_detector(WithSettings(grid, objectness_weight=weight), reader)
        found = {layout: detector([s.image for s in samples]) for layout, samples in sets.items()}
        maps = {
            layout: evaluate.score_detections(found[layout], samples)["map50"]
            for layout, samples in sets.items()
        }
        for threshold in thresholds:
            per_set = {}
            for layout, samples in sets.items():
                metrics = evaluate.score_detections(found[layout], samples, threshold)
                metrics.update(evaluate.false_positives(found[layout], samples, threshold))
                per_set[layout] = {
                    "map50": round(maps[layout], 4),
                    "precision": round(metrics["precision"], 4),
                    "recall": round(metrics["recall"], 4),
                    "f1": round(_f1(metrics["precision"], metrics["recall"]), 4),
                    "lookalike_fp": round(metrics["lookalike_fp"], 4),
                }
            mean_f1 = float(np.mean([m["f1"] for m in per_set.values()]))
            rows.append(
                {
                    "objectness_weight": weight,
                    "confidence_threshold": threshold,
                    "mean_f1": round(mean_f1, 4),
                    "sets": per_set,
                }
            )
    best = max(rows, key=lambda row: row["mean_f1"])  # the first of equals: the larger weight
    return {
        "purpose": "validation",
        "seed": seed,
        "images_per_set": count,
        "rule": "best mean F1 over the sets; F1 at the threshold, mAP@0.5 over all scores",
        "chosen": {
            "objectness_weight": best["objectness_weight"],
            "confidence_threshold": best["confidence_threshold"],
        },
        "rows": rows,
    }


def format_tuning(result: dict[str, Any]) -> str:
    """A Markdown table of the tuning rows, the pick in bold."""
    layouts = list(result["rows"][0]["sets"])
    chosen = result["chosen"]
    head = ["weight", "threshold", "mean F1"]
    head += [f"{layout} mAP / F1" for layout in layouts] + ["look-alike FP / image"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for row in result["rows"]:
        picked = (row["objectness_weight"], row["confidence_threshold"]) == (
            chosen["objectness_weight"],
            chosen["confidence_threshold"],
        )
        cells = [f"{row['objectness_weight']:g}", f"{row['confidence_threshold']:g}"]
        cells.append(f"{row['mean_f1']:.3f}")
        cells += [f"{m['map50']:.3f} / {m['f1']:.3f}" for m in row["sets"].values()]
        cells.append(f"{row['sets'].get('lookalikes', {}).get('lookalike_fp', float('nan')):.2f}")
        if picked:
            cells = [f"**{cell}**" for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
