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
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from modelkit.detection import GridModel, detection_settings
from training.detector import evaluate
from training.detector.dataset import generate

TUNING_SETS = ("photos", "clutter", "lookalikes")
TUNING_SEED = 7
TUNING_COUNT = 250
WEIGHTS = (1.0, 0.5, 0.25, 0.0)
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
CHOSEN = ("proposal_threshold", "max_proposals", "objectness_weight", "confidence_threshold")


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
    proposals: Sequence[tuple[float, int]] = (),
) -> dict[str, Any]:
    """Every (weight, threshold) on the validation sets, and the pick (`chosen`).

    `proposals`, pairs of (proposal_threshold, max_proposals), are tried too when given (the
    grid's own settings otherwise); each row says its images/s, since more proposals cost
    reader time: a pick among those is a trade-off for a person, `chosen` only reads F1.
    """
    import time

    sets = {layout: list(generate(layout, count, seed, purpose="validation")) for layout in layouts}
    served = detection_settings(grid)
    pairs = list(proposals) or [(served.proposal_threshold, served.max_proposals)]
    rows = []
    for (proposal_threshold, max_proposals), weight in itertools.product(pairs, weights):
        changed = WithSettings(
            grid,
            objectness_weight=weight,
            proposal_threshold=proposal_threshold,
            max_proposals=max_proposals,
        )
        detector = evaluate.reading_detector(changed, reader)
        start = time.perf_counter()
        found = {layout: detector([s.image for s in samples]) for layout, samples in sets.items()}
        speed = len(layouts) * count / (time.perf_counter() - start)
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
                    "proposal_threshold": proposal_threshold,
                    "max_proposals": max_proposals,
                    "objectness_weight": weight,
                    "confidence_threshold": threshold,
                    "mean_f1": round(mean_f1, 4),
                    "images_per_second": round(speed, 1),
                    "sets": per_set,
                }
            )
    best = max(rows, key=lambda row: row["mean_f1"])  # the first of equals: the larger weight
    return {
        "purpose": "validation",
        "seed": seed,
        "images_per_set": count,
        "rule": "best mean F1 over the sets; F1 at the threshold, mAP@0.5 over all scores",
        "chosen": {key: best[key] for key in CHOSEN},
        "rows": rows,
    }


def format_tuning(result: dict[str, Any]) -> str:
    """A Markdown table of the tuning rows, the pick in bold."""
    layouts = list(result["rows"][0]["sets"])
    chosen = result["chosen"]
    head = ["proposals (threshold, cap)", "weight", "threshold", "mean F1"]
    head += [f"{layout} mAP / F1" for layout in layouts]
    head += ["look-alike FP / image", "images/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for row in result["rows"]:
        picked = all(row[key] == value for key, value in chosen.items())
        cells = [f"{row['proposal_threshold']:g}, {row['max_proposals']}"]
        cells += [f"{row['objectness_weight']:g}", f"{row['confidence_threshold']:g}"]
        cells.append(f"{row['mean_f1']:.3f}")
        cells += [f"{m['map50']:.3f} / {m['f1']:.3f}" for m in row["sets"].values()]
        cells.append(f"{row['sets'].get('lookalikes', {}).get('lookalike_fp', float('nan')):.2f}")
        cells.append(f"{row['images_per_second']:.0f}")
        if picked:
            cells = [f"**{cell}**" for cell in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
