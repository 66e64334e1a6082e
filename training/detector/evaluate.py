"""mAP@0.5 (Pascal VOC, all-point interpolation), precision, recall and false positives.

Every detector is a function from PIL images to `Detections` and is scored the same way: its
detections down to `MAP_MIN_CONFIDENCE` (for the precision-recall curve) are matched to ground
truth of the same class greedily by score at IoU >= 0.5. Precision, recall and false positives
per image are read at the default confidence threshold; `lookalike_fp` counts the false
positives that sit on another word (IoU >= 0.5 with one of `Sample.others`): "chart" read as
chat. The held-out images come from the generator's "eval" purpose (and, for the `real`
layouts, the `eval` group of photos and fonts), which training never draws from; the
independent test set uses purpose "test" and its own group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelkit.detection import GridModel, box_iou, detect, postprocess, to_model_input
from training.detector.dataset import (
    LABELS,
    Sample,
    contact_sheet,
    draw_boxes,
    generate,
)

EVAL_SEED = 2024
EVAL_COUNT = 1000
REALISTIC_COUNT = 500  # per realistic set: photos, clutter, look-alikes, perturbations
EVAL_SETS = (
    "seed", "hard", "photos", "clutter", "lookalikes",
    "hard-rotate", "hard-blur", "hard-jpeg", "hard-scale",
)  # fmt: skip
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

    @classmethod
    def of(cls, found: Sequence) -> Detections:
        """From a list of `modelkit.detection.Detection`."""
        return cls(
            boxes=np.array([d.box for d in found], dtype=np.float32).reshape(-1, 4),
            scores=np.array([d.confidence for d in found], dtype=np.float32),
            classes=np.array([d.class_id for d in found], dtype=np.int64),
        )


Detector = Callable[[Sequence], list[Detections]]  # PIL images -> detections per image


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


def false_positives(
    detections: Sequence[Detections],
    truths: Sequence[Sample],
    confidence: float = CONFIDENCE_THRESHOLD,
) -> dict[str, float]:
    """False positives per image at `confidence`, all and those on another word."""
    total = on_words = 0
    for found, truth in zip(detections, truths, strict=True):
        above = found.scores >= confidence
        boxes, classes = found.boxes[above], found.classes[above]
        hit = np.zeros(len(boxes), dtype=bool)
        for class_id in np.unique(classes):
            mine = np.flatnonzero(classes == class_id)
            true_boxes = truth.boxes[truth.classes == class_id]
            if len(true_boxes):
                # Same rule as the AP matching: best first, one detection per word.
                order = mine[np.argsort(-found.scores[above][mine], kind="stable")]
                overlaps = box_iou(boxes[order], true_boxes)
                taken = np.zeros(len(true_boxes), dtype=bool)
                for rank, index in enumerate(order):
                    candidates = np.where(taken, -1.0, overlaps[rank])
                    best = int(np.argmax(candidates))
                    if candidates[best] >= MATCH_IOU:
                        taken[best] = hit[index] = True
        wrong = ~hit
        total += int(wrong.sum())
        if len(truth.others) and wrong.any():
            on_words += int((box_iou(boxes[wrong], truth.others).max(axis=1) >= MATCH_IOU).sum())
    images = max(1, len(truths))
    return {"fp_per_image": total / images, "lookalike_fp": on_words / images}


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
            found.append(Detections.of(detections))
    return found


def grid_detector(predict: Predict, input_size: int) -> Detector:
    """A one-stage grid model (v1, humble) as a Detector."""
    return lambda images: run_detector(predict, images, input_size)


def reading_detector(grid: GridModel, reader: GridModel, batch_size: int = 32) -> Detector:
    """A reading detector (grid + reader) as a Detector, through the serving code."""

    def run(images: Sequence) -> list[Detections]:
        found = []
        for start in range(0, len(images), batch_size):
            chunk = list(images[start : start + batch_size])
            for detections in detect(
                chunk, grid, confidence=MAP_MIN_CONFIDENCE, reader=reader, max_detections=100
            ):
                found.append(Detections.of(detections))
        return found

    return run


def held_out(layout: str, count: int = EVAL_COUNT, purpose: str = "eval") -> list[Sample]:
    return list(generate(layout, count, EVAL_SEED, purpose=purpose))


def evaluate(
    models: dict[str, Detector],
    count: int | None = None,
    layouts: Sequence[str] = EVAL_SETS,
    confidence: float | dict[str, float] = CONFIDENCE_THRESHOLD,
    purpose: str = "eval",
    timings: dict[str, float] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """{model: {layout: metrics}}; `count` images per set (default: 1,000 for `seed` and
    `hard`, 500 for the realistic sets). `timings` receives each model's seconds per image.

    Precision, recall and false positives are read at `confidence`, or per model at its own
    (a dict: each version's served threshold, `detection.confidence_threshold`)."""
    import time

    table: dict[str, dict[str, dict[str, float]]] = {name: {} for name in models}
    seconds = dict.fromkeys(models, 0.0)
    images_seen = 0
    for layout in layouts:
        default = EVAL_COUNT if layout in ("seed", "hard") else REALISTIC_COUNT
        samples = held_out(layout, count or default, purpose)
        images = [sample.image for sample in samples]
        images_seen += len(images)
        for name, detector in models.items():
            start = time.perf_counter()
            detections = detector(images)
            seconds[name] += time.perf_counter() - start
            threshold = (
                confidence.get(name, CONFIDENCE_THRESHOLD)
                if isinstance(confidence, dict)
                else confidence
            )
            metrics = score_detections(detections, samples, threshold)
            metrics.update(false_positives(detections, samples, threshold))
            table[name][layout] = metrics
    if timings is not None:
        timings.update({name: value / max(1, images_seen) for name, value in seconds.items()})
    return table


def format_table(table: dict[str, dict[str, dict[str, float]]]) -> str:
    """A Markdown table: one row per model and set."""
    lines = [
        "| model | set | mAP@0.5 | AP chat | AP rat | precision | recall | FP/image | "
        "FP on other words/image |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, layouts in table.items():
        for layout, m in layouts.items():
            lines.append(
                f"| `{name}` | `{layout}` | {m['map50']:.4f} | {m.get('ap_chat', 0):.4f} | "
                f"{m.get('ap_rat', 0):.4f} | {m['precision']:.4f} | {m['recall']:.4f} | "
                f"{m.get('fp_per_image', 0):.2f} | {m.get('lookalike_fp', 0):.3f} |"
            )
    return "\n".join(lines)


def by_set(table: dict[str, dict[str, dict[str, float]]], key: str = "map50") -> str:
    """A compact Markdown table: one row per set, one column per model."""
    names = list(table)
    layouts = list(next(iter(table.values())))
    lines = ["| set | " + " | ".join(f"`{n}`" for n in names) + " |"]
    lines.append("|---|" + "---|" * len(names))
    for layout in layouts:
        cells = " | ".join(f"{table[n][layout][key]:.3f}" for n in names)
        lines.append(f"| `{layout}` | {cells} |")
    return "\n".join(lines)


def predictions_picture(
    detector: Detector,
    path: Path,
    count: int = 6,
    confidence: float = CONFIDENCE_THRESHOLD,
    columns: int = 3,
    layout: str = "hard",
) -> Path:
    """Detections at `confidence` drawn on the first `count` held-out images of `layout`."""
    samples = held_out(layout, count)
    found = detector([s.image for s in samples])
    tiles = []
    for sample, detections in zip(samples, found, strict=True):
        keep = detections.scores >= confidence
        detections = Detections(
            detections.boxes[keep], detections.scores[keep], detections.classes[keep]
        )
        scale = max(1, 384 // max(sample.image.size))
        tiles.append(
            draw_boxes(sample.image, detections.boxes, detections.classes, detections.scores, scale)
        )
    contact_sheet(tiles, columns, tile_size=384).save(path)
    return path
