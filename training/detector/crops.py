"""The reader's training crops, cut from generated scenes (no TensorFlow: worker processes).

For every target, jittered proposals like the grid's mistakes (centre shifts of ~10 % of the
box, sizes of ±15 %) that keep IoU >= 0.5 with it are that target, with the target's box as
fractions of the crop; proposals at IoU < 0.3 with every target (other words, parts of longer
words, badly placed boxes, bare background) are "other"; those in between are not used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from modelkit.detection import READER_HEIGHT, READER_WIDTH, box_iou, reader_crop, reader_region
from training.detector.dataset import Sample
from training.detector.words import LABELS

READER_CLASSES = len(LABELS) + 1  # the labels, then "another word"
TARGET_FIELDS = READER_CLASSES + 4 + 1  # one-hot, box, has-box flag
POSITIVE_IOU = 0.5
NEGATIVE_IOU = 0.3


def _jitter(rng: np.random.Generator, box: np.ndarray, spread: float) -> np.ndarray:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2 + rng.normal(0, 0.1 * spread) * w
    cy = (y0 + y1) / 2 + rng.normal(0, 0.15 * spread) * h
    w *= float(np.exp(rng.normal(0, 0.15 * spread)))
    h *= float(np.exp(rng.normal(0, 0.2 * spread)))
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)


def _row(class_id: int, region: tuple[float, ...], box: np.ndarray | None) -> np.ndarray:
    row = np.zeros(TARGET_FIELDS, np.float32)
    row[class_id] = 1.0
    if box is not None:
        x0, y0, x1, y1 = region
        scale = np.array([x1 - x0, y1 - y0] * 2, np.float32)
        row[READER_CLASSES:-1] = np.clip((box - np.array([x0, y0, x0, y0])) / scale, 0.0, 1.0)
        row[-1] = 1.0
    return row


def training_crops(
    sample: Sample, rng: np.random.Generator, max_others: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Crops (M, 32, 96) uint8 and their targets (M, TARGET_FIELDS) from one scene."""
    gray = sample.image.convert("L")
    width, height = sample.image.size
    targets = sample.boxes
    proposals: list[np.ndarray] = []
    for box in targets:
        proposals.append(box.astype(np.float32))
        proposals.extend(_jitter(rng, box, 1.0) for _ in range(3))
        if rng.random() < 0.5:
            proposals.append(_jitter(rng, box, 4.0))  # a bad proposal: mostly "other"
    others = sample.others
    if len(others) > max_others:
        others = others[rng.choice(len(others), max_others, replace=False)]
    for box in others:
        proposals.append(_jitter(rng, box, 0.7))
        x0, y0, x1, y1 = box
        if rng.random() < 0.3 and x1 - x0 > 2 * (y1 - y0):  # part of a longer word
            cut = float(rng.uniform(0.4, 0.75)) * (x1 - x0)
            part = (x0, y0, x0 + cut, y1) if rng.random() < 0.5 else (x1 - cut, y0, x1, y1)
            proposals.append(np.array(part, np.float32))
    for _ in range(2):  # bare background
        h = float(np.exp(rng.uniform(np.log(8), np.log(64))))
        w = h * float(rng.uniform(1.2, 4.0))
        x, y = rng.uniform(0, max(1.0, width - w)), rng.uniform(0, max(1.0, height - h))
        proposals.append(np.array([x, y, x + w, y + h], np.float32))
    proposals_array = np.stack(proposals)
    overlaps = box_iou(proposals_array, targets) if len(targets) else None
    crops, rows = [], []
    for index, proposal in enumerate(proposals_array):
        region = reader_region(proposal)
        if overlaps is not None:
            best = int(np.argmax(overlaps[index]))
            iou = float(overlaps[index, best])
        else:
            best, iou = -1, 0.0
        if iou >= POSITIVE_IOU:
            row = _row(int(sample.classes[best]), region, targets[best])
        elif iou < NEGATIVE_IOU:
            row = _row(len(LABELS), region, None)
        else:
            continue
        crops.append(reader_crop(gray, region))
        rows.append(row)
    return np.stack(crops), np.stack(rows)


def crops_picture(crops: np.ndarray, rows: np.ndarray, path: Path, columns: int = 8) -> None:
    """A sheet of reader crops with their class as a coloured bar, for a person to check."""
    tiles = []
    colours = ((255, 64, 64), (64, 160, 255), (160, 160, 160))
    for crop, row in zip(crops, rows, strict=True):
        tile = Image.fromarray(crop).convert("RGB").resize((READER_WIDTH * 2, READER_HEIGHT * 2))
        bar = Image.new("RGB", (tile.width, 6), colours[int(np.argmax(row[:READER_CLASSES]))])
        canvas = Image.new("RGB", (tile.width, tile.height + 6))
        canvas.paste(tile, (0, 0))
        canvas.paste(bar, (0, tile.height))
        tiles.append(canvas)
    rows_count = -(-len(tiles) // columns)
    sheet = Image.new(
        "RGB", (columns * (READER_WIDTH * 2 + 4), rows_count * (READER_HEIGHT * 2 + 10))
    )
    for index, tile in enumerate(tiles):
        r, c = divmod(index, columns)
        sheet.paste(tile, (c * (READER_WIDTH * 2 + 4), r * (READER_HEIGHT * 2 + 10)))
    sheet.save(path)
