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
false positives; or, with `rank="reader"`, those the version's own reader scores highest as a
target: the false positives that version would serve, for a next round of training (version 5).

No TensorFlow here: the grid runs in ONNX Runtime, one thread per worker process.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from modelkit.detection import (
    box_iou,
    detection_settings,
    letterbox_image,
    propose,
    reader_crop,
    reader_region,
)
from modelkit.repository import DEFAULT_SIGNATURE
from training.detector.crops import NEGATIVE_IOU, POSITIVE_IOU, TARGET_FIELDS, _row
from training.detector.dataset import Sample, generate_one
from training.detector.words import LABELS

MAX_NEGATIVES = 12  # per scene, the best-ranked: a page of text has hundreds of words
RANKS = ("grid", "reader")  # which negatives are kept: the grid's best-scored or the reader's


@functools.cache
def _signature(models_dir: str, version: int, signature: str = DEFAULT_SIGNATURE):
    from modelkit import load_model

    return load_model(models_dir, "detector", version, threads=1, signature=signature)


def _reader_scores(reader, crops: list[np.ndarray]) -> np.ndarray:
    """The reader's best target probability for each crop: how likely it is served."""
    read = reader.predict(np.stack(crops)[..., None].astype(np.float32) / 255.0)
    return read[:, : len(LABELS)].max(axis=-1)


def mined_crops(
    sample: Sample, grid, max_negatives: int = MAX_NEGATIVES, reader=None
) -> tuple[np.ndarray, np.ndarray]:
    """Crops (M, 32, 96) uint8 and targets (M, TARGET_FIELDS) at the grid's proposals; the
    negatives kept are the grid's best-ranked, or the `reader`'s when one is given."""
    settings = detection_settings(grid)
    canvas, placement = letterbox_image(sample.image, settings.input_size)
    batch = np.asarray(canvas, np.float32)[None] / 255.0
    proposals, _ = propose(
        grid.predict(batch)[0],
        placement,
        settings.input_size,
        len(settings.labels),
        settings.proposal_threshold,
        settings.max_proposals,
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
    negative_crops, negative_rows = [], []
    for index, proposal in enumerate(proposals):
        best = int(np.argmax(overlaps[index])) if overlaps.shape[1] else -1
        iou = float(overlaps[index, best]) if best >= 0 else 0.0
        region = reader_region(proposal)
        if iou >= POSITIVE_IOU:
            crops.append(reader_crop(gray, region))
            rows.append(_row(int(sample.classes[best]), region, targets[best]))
        elif iou < NEGATIVE_IOU and (reader is not None or len(negative_crops) < max_negatives):
            negative_crops.append(reader_crop(gray, region))
            negative_rows.append(_row(len(LABELS), region, None))
    if reader is not None and negative_crops:
        order = np.argsort(-_reader_scores(reader, negative_crops), kind="stable")
        negative_crops = [negative_crops[i] for i in order[:max_negatives]]
        negative_rows = [negative_rows[i] for i in order[:max_negatives]]
    crops, rows = crops + negative_crops, rows + negative_rows
    if not crops:
        return empty
    return np.stack(crops), np.stack(rows)


MiningJob = tuple[str, int, int, str, str, int, str]


def make_mined(job: MiningJob) -> tuple[np.ndarray, np.ndarray]:
    """One scene's mined crops (a worker process's job)."""
    layout, seed, index, purpose, models_dir, version, rank = job
    reader = _signature(models_dir, version, "reader") if rank == "reader" else None
    return mined_crops(
        generate_one(layout, seed, index, purpose),
        _signature(models_dir, version),
        reader=reader,
    )


def mining_jobs(
    layout: str,
    count: int,
    seed: int,
    purpose: str,
    models_dir: Path,
    version: int,
    rank: str = "grid",
) -> list[MiningJob]:
    if rank not in RANKS:
        raise ValueError(f"rank must be one of {RANKS}, not {rank!r}")
    return [
        (layout, seed, index, purpose, str(models_dir), version, rank) for index in range(count)
    ]
