"""Reader crops cut where a published grid proposes them: the reader's hard examples.

`training_crops` imitates the grid's mistakes with jittered boxes around the scene's words;
it cannot know which words the grid actually sends to the reader, nor how its boxes sit on
them. At serving time the reader sees exactly the grid's proposals, and what it got wrong on
validation scenes was there (docs/models.md, version 4): one-letter neighbours of the targets
("shat", "chai", "char", "rot") read as targets, and parts of longer words. So a published
version's grid runs here on fresh training scenes, through the serving code's `propose`, and
each proposal is labelled against the scene's truth by the same IoU rules as `training_crops`
(>= 0.5 with a target: that target and its box; < 0.3 with every target: another word; in
between: not used). Of the negatives, those the grid ranks highest are kept, the likeliest
false positives.

No TensorFlow here: the grid runs in ONNX Runtime, one thread per worker process.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from modelkit.detection import (
    box_iou,
    letterbox_image,
    propose,
    reader_crop,
    reader_region,
)
from training.detector.crops import NEGATIVE_IOU, POSITIVE_IOU, TARGET_FIELDS, _row
from training.detector.dataset import Sample, generate_one
from training.detector.words import LABELS

MAX_NEGATIVES = 12  # per scene, the grid's best-scored: a page of text has hundreds of words


@functools.cache
def _grid(models_dir: str, version: int):
    from modelkit import load_model

    return load_model(models_dir, "detector", version, threads=1)


def mined_crops(
    sample: Sample, grid, max_negatives: int = MAX_NEGATIVES
) -> tuple[np.ndarray, np.ndarray]:
    """Crops (M, 32, 96) uint8 and targets (M, TARGET_FIELDS) at the grid's proposals."""
    settings = grid.metadata["detection"]
    size = int(settings["input_size"])
    canvas, placement = letterbox_image(sample.image, size)
    batch = np.asarray(canvas, np.float32)[None] / 255.0
    proposals, _ = propose(
        grid.predict(batch)[0],
        placement,
        size,
        len(settings["labels"]),
        float(settings["proposal_threshold"]),
        int(settings["max_proposals"]),
    )  # best-scored first
    empty = np.zeros((0, 32, 96), np.uint8), np.zeros((0, TARGET_FIELDS), np.float32)
    if not len(proposals):
        return empty
    targets = sample.boxes
    overlaps = (
        box_iou(proposals, targets) if len(targets) else np.zeros((len(proposals), 0), np.float32)
    )
    gray = sample.image.convert("L")
    crops, rows = [], []
    negatives = 0
    for index, proposal in enumerate(proposals):
        best = int(np.argmax(overlaps[index])) if overlaps.shape[1] else -1
        iou = float(overlaps[index, best]) if best >= 0 else 0.0
        region = reader_region(proposal)
        if iou >= POSITIVE_IOU:
            row = _row(int(sample.classes[best]), region, targets[best])
        elif iou < NEGATIVE_IOU and negatives < max_negatives:
            row = _row(len(LABELS), region, None)
            negatives += 1
        else:
            continue
        crops.append(reader_crop(gray, region))
        rows.append(row)
    if not crops:
        return empty
    return np.stack(crops), np.stack(rows)


def make_mined(job: tuple[str, int, int, str, str, int]) -> tuple[np.ndarray, np.ndarray]:
    """One scene's mined crops (a worker process's job)."""
    layout, seed, index, purpose, models_dir, version = job
    return mined_crops(generate_one(layout, seed, index, purpose), _grid(models_dir, version))


def mining_jobs(
    layout: str, count: int, seed: int, purpose: str, models_dir: Path, version: int
) -> list[tuple[str, int, int, str, str, int]]:
    return [(layout, seed, index, purpose, str(models_dir), version) for index in range(count)]
