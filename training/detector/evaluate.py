"""mAP@0.5 (Pascal VOC, all-point interpolation), precision and recall of a detector.

Both models are scored the same way: letterbox each held-out image to the model's input, run
it, decode the grid with `modelkit.detection` (confidence floor `MAP_MIN_CONFIDENCE` for the
precision-recall curve), then match detections to ground truth of the same class greedily by
score at IoU >= 0.5. Precision and recall are read at the model's default confidence threshold.
The held-out images come from the generator's "eval" purpose, which training never draws from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelkit.detection import box_iou, postprocess, to_model_input
from training.detector.dataset import (
    LABELS,
    LAYOUTS,
    Sample,
    contact_sheet,
    draw_boxes,
    generate,
)

EVAL_SEED = 2024
EVAL_COUNT = 1000
MATCH_IOU = 0.5
MAP_MIN_CONFIDENCE = 0.01
CONFIDENCE_THRESHOLD = 0.3
NMS_IOU_THRESHOLD = 0.45

Predict = Callable[[np.ndarray], np.ndarray]  # input batch -> grids (N, S, S, B, 5 + C)


@dataclass
class Detections:
    boxes: np.ndarray  # (N, 4) original pixels
    scores: np.ndarray
    classes: np.ndarray


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope, VOC 2010+ "all points" rule."""
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def match_detections(
    detections: Sequence[Detections], truths: Sequence[Sample], class_id: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Scores and true-positive flags of one class's detections over all images, by score."""
    records: list[tuple[float, bool]] = []
    positives = 0
    for found, truth in zip(detections, truths, strict=True):
        true_boxes = truth.boxes[truth.classes == class_id]
        positives += len(true_boxes)
        mine = found.classes == class_id
        boxes, scores = found.boxes[mine], found.scores[mine]
        order = np.argsort(-scores, kind="stable")
        overlaps = box_iou(boxes[order], true_boxes)
        taken = np.zeros(len(true_boxes), dtype=bool)
        for rank, index in enumerate(order):
            hit = False
            if len(true_boxes):
                candidates = np.where(taken, -1.0, overlaps[rank])
                best = int(np.argmax(candidates))
                if candidates[best] >= MATCH_IOU:
                    taken[best] = hit = True
            records.append((float(scores[index]), hit))
    records.sort(key=lambda record: -record[0])
    scores = np.array([score for score, _ in records], dtype=np.float32)
    hits = np.array([hit for _, hit in records], dtype=bool)
    return scores, hits, positives


def score_detections(
    detections: Sequence[Detections],
    truths: Sequence[Sample],
    confidence: float = CONFIDENCE_THRESHOLD,
    num_classes: int = len(LABELS),
) -> dict[str, float]:
    """mAP@0.5 over the classes present, per-class AP, and precision/recall at `confidence`."""
    result: dict[str, float] = {}
    average_precisions = []
    true_positives = false_positives = all_positives = 0
    for class_id in range(num_classes):
        scores, hits, positives = match_detections(detections, truths, class_id)
        if positives:
            cumulative_hits = np.cumsum(hits)
            recall = cumulative_hits / positives
            precision = cumulative_hits / np.arange(1, len(hits) + 1)
            ap = average_precision(recall, precision)
            average_precisions.append(ap)
            result[f"ap_{LABELS[class_id]}"] = ap
        above = scores >= confidence
        true_positives += int(np.sum(hits & above))
        false_positives += int(np.sum(~hits & above))
        all_positives += positives
    result["map50"] = float(np.mean(average_precisions)) if average_precisions else 0.0
    predicted = true_positives + false_positives
    result["precision"] = true_positives / predicted if predicted else 1.0
    result["recall"] = true_positives / all_positives if all_positives else 1.0
    return result


def run_detector(
    predict: Predict,
    images: Sequence,
    input_size: int,
    confidence: float = MAP_MIN_CONFIDENCE,
    iou_threshold: float = NMS_IOU_THRESHOLD,
    batch_size: int = 32,
) -> list[Detections]:
    """Letterbox, predict and decode; boxes in original pixels."""
    found = []
    for start in range(0, len(images), batch_size):
        batch, placements = to_model_input(images[start : start + batch_size], input_size)
        for grid, placement in zip(predict(batch), placements, strict=True):
            detections = postprocess(
                grid, placement, input_size, LABELS, confidence, iou_threshold, max_detections=100
            )
            found.append(
                Detections(
                    boxes=np.array([d.box for d in detections], dtype=np.float32).reshape(-1, 4),
                    scores=np.array([d.confidence for d in detections], dtype=np.float32),
                    classes=np.array([d.class_id for d in detections], dtype=np.int64),
                )
            )
    return found


def held_out(layout: str, count: int = EVAL_COUNT) -> list[Sample]:
    return list(generate(layout, count, EVAL_SEED, purpose="eval"))


def evaluate(
    models: dict[str, tuple[Predict, int]],
    count: int = EVAL_COUNT,
    layouts: Sequence[str] = LAYOUTS,
    confidence: float = CONFIDENCE_THRESHOLD,
) -> dict[str, dict[str, dict[str, float]]]:
    """{model: {layout: metrics}} for models given as (predict, input size)."""
    table: dict[str, dict[str, dict[str, float]]] = {name: {} for name in models}
    for layout in layouts:
        samples = held_out(layout, count)
        images = [sample.image for sample in samples]
        for name, (predict, input_size) in models.items():
            detections = run_detector(predict, images, input_size)
            table[name][layout] = score_detections(detections, samples, confidence)
    return table


def format_table(table: dict[str, dict[str, dict[str, float]]]) -> str:
    """A Markdown table: one row per model and layout."""
    lines = [
        "| model | layout | mAP@0.5 | AP chat | AP rat | precision | recall |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, layouts in table.items():
        for layout, m in layouts.items():
            lines.append(
                f"| `{name}` | `{layout}` | {m['map50']:.4f} | {m.get('ap_chat', 0):.4f} | "
                f"{m.get('ap_rat', 0):.4f} | {m['precision']:.4f} | {m['recall']:.4f} |"
            )
    return "\n".join(lines)


def predictions_picture(
    predict: Predict,
    input_size: int,
    path: Path,
    count: int = 6,
    confidence: float = CONFIDENCE_THRESHOLD,
    columns: int = 3,
) -> Path:
    """Detections drawn on the first `count` held-out `hard` images."""
    samples = held_out("hard", count)
    found = run_detector(predict, [s.image for s in samples], input_size, confidence)
    tiles = []
    for sample, detections in zip(samples, found, strict=True):
        scale = max(1, 384 // max(sample.image.size))
        tiles.append(
            draw_boxes(sample.image, detections.boxes, detections.classes, detections.scores, scale)
        )
    contact_sheet(tiles, columns, tile_size=384).save(path)
    return path
