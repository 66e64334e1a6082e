"""Where a reading detector errs, on validation scenes: what to fix next.

For each target: was it found (its class, IoU >= 0.5, at the served threshold), and if not,
did the grid propose it (a proposal at IoU >= 0.5) or not: the reader's miss or the grid's.
For each false positive: the word under it (IoU >= 0.5 with another word; "(part)" when it
only overlaps one, "<background>" when it overlaps nothing, "<target>" when it sits badly on a
target or names the wrong one). Through the serving code, at the version's own settings.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from modelkit.detection import (
    GridModel,
    box_iou,
    detection_settings,
    propose,
    read_words,
    to_model_input,
)
from training.detector.dataset import Sample, generate
from training.detector.evaluate import MATCH_IOU


def _word_under(box: np.ndarray, sample: Sample) -> str:
    if len(sample.boxes) and box_iou(box[None], sample.boxes).max() >= 0.1:
        return "<target>"
    if not len(sample.others):
        return "<background>"
    overlaps = box_iou(box[None], sample.others)[0]
    best = int(np.argmax(overlaps))
    if overlaps[best] < 0.1:
        return "<background>"
    word = sample.other_words[best].lower() if sample.other_words else "?"
    return word if overlaps[best] >= MATCH_IOU else f"{word}(part)"


def error_report(grid: GridModel, reader: GridModel, samples: list[Sample]) -> dict[str, Any]:
    """Counts of found and missed targets (with or without a proposal) and false positives by
    the word under them; heights of the targets missed without a proposal, in input pixels."""
    settings = detection_settings(grid)
    size = settings.input_size
    counts: Counter[str] = Counter()
    words: Counter[str] = Counter()
    unproposed_heights: list[float] = []
    for sample in samples:
        batch, (placement,) = to_model_input([sample.image], size)
        output = grid.predict(batch)[0]
        proposals, _ = propose(
            output, placement, size, len(settings.labels),
            settings.proposal_threshold, settings.max_proposals,
        )  # fmt: skip
        found = read_words(
            sample.image, output, placement, settings, reader,
            settings.confidence_threshold, settings.nms_iou_threshold, 100,
        )  # fmt: skip
        boxes = np.array([d.box for d in found], np.float32).reshape(-1, 4)
        classes = np.array([d.class_id for d in found], np.int64)
        hit = np.zeros(len(found), bool)
        for target, class_id in zip(sample.boxes, sample.classes, strict=True):
            counts["targets"] += 1
            overlaps = box_iou(target[None], boxes)[0] if len(boxes) else np.zeros(0)
            matches = (overlaps >= MATCH_IOU) & (classes == class_id) & ~hit
            if matches.any():
                hit[int(np.argmax(np.where(matches, overlaps, -1)))] = True
                counts["found"] += 1
            elif len(proposals) and box_iou(target[None], proposals).max() >= MATCH_IOU:
                counts["missed with a proposal"] += 1
            else:
                counts["missed without a proposal"] += 1
                unproposed_heights.append(float(target[3] - target[1]) * placement.scale)
        for box in boxes[~hit]:
            counts["false positives"] += 1
            words[_word_under(box, sample)] += 1
    return {
        "images": len(samples),
        "counts": dict(counts),
        "false_positives_by_word": dict(words.most_common()),
        "unproposed_heights_px": unproposed_heights,
    }


def format_report(layout: str, report: dict[str, Any], top: int = 12) -> str:
    counts = report["counts"]
    targets = max(1, counts.get("targets", 0))
    lines = [
        f"{layout}: {report['images']} images, {counts.get('targets', 0)} targets, "
        f"found {counts.get('found', 0) / targets:.3f}; missed with a proposal "
        f"{counts.get('missed with a proposal', 0)}, without "
        f"{counts.get('missed without a proposal', 0)}; false positives "
        f"{counts.get('false positives', 0)} "
        f"({counts.get('false positives', 0) / max(1, report['images']):.2f} per image)",
        "  false positives on: " + ", ".join(
            f"{word} {n}" for word, n in list(report["false_positives_by_word"].items())[:top]
        ),
    ]  # fmt: skip
    if report["unproposed_heights_px"]:
        q = np.quantile(report["unproposed_heights_px"], [0.1, 0.5, 0.9])
        lines.append(
            "  heights of the targets missed without a proposal (input pixels), "
            f"10/50/90 %: {q[0]:.1f} / {q[1]:.1f} / {q[2]:.1f}"
        )
    return "\n".join(lines)


def validation_errors(
    grid: GridModel, reader: GridModel, layout: str, count: int, seed: int
) -> dict[str, Any]:
    return error_report(grid, reader, list(generate(layout, count, seed, purpose="validation")))
