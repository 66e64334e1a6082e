"""The seed article's "humble YOLO", kept as the baseline the evaluation reports.

The network is the seed's, layer for layer: a 64x64 input, four convolutions, two poolings, two
sigmoid dense layers, reshaped to 2x2 = 4 cells of `3 + 5 * boxes` values:
`[p(chat), p(rat), p(nothing), x, y, w, h, confidence]` with (x, y) the centre relative to its
cell and (w, h) relative to the image. The loss is the seed's too: squared class error, squared
error of the centre once the grid offset is added, squared error of sqrt(w), sqrt(h) and of the
confidence towards the IoU, all but the class term masked by object presence (empty cells train
only their class scores). One fix: the seed computes the IoU with centres in cell units and
sizes in image units; here both are in image units. The seed fed raw 0..255 pixels; here the
input is [0, 1] like every served model.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from training.detector.dataset import LABELS, SEED_GRID

INPUT_SIZE = 64
GRID = SEED_GRID
BOXES = 1
CLASS_FIELDS = len(LABELS) + 1  # the seed's third class value stands for "nothing"
CELL_FIELDS = CLASS_FIELDS + 5 * BOXES


def build_humble(grid: int = GRID, boxes: int = BOXES) -> keras.Model:
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="image")
    x = layers.Conv2D(16, (1, 1))(inputs)
    x = layers.Conv2D(32, (3, 3))(x)
    x = layers.LeakyReLU(negative_slope=0.3)(x)
    x = layers.MaxPooling2D(pool_size=(2, 2))(x)
    x = layers.Conv2D(16, (3, 3))(x)
    x = layers.Conv2D(32, (3, 3))(x)
    x = layers.LeakyReLU(negative_slope=0.3)(x)
    x = layers.MaxPooling2D(pool_size=(2, 2))(x)
    x = layers.Flatten()(x)
    x = layers.Dense(256, activation="sigmoid")(x)
    x = layers.Dense(grid * grid * (CLASS_FIELDS + 5 * boxes), activation="sigmoid")(x)
    outputs = layers.Reshape((grid * grid, CLASS_FIELDS + 5 * boxes), name="cells")(x)
    return keras.Model(inputs, outputs, name="humble")


def cell_offsets(grid: int = GRID) -> np.ndarray:
    """(grid * grid, 2): the (x, y) of each cell's top-left corner in cell units, row-major."""
    return np.array([[x, y] for y in range(grid) for x in range(grid)], dtype=np.float32)


def encode_humble_targets(
    boxes: np.ndarray, classes: np.ndarray, input_size: int = INPUT_SIZE, grid: int = GRID
) -> np.ndarray:
    """Boxes (N, 4) in input pixels -> (grid * grid, 8) seed targets; centres in cell units."""
    target = np.zeros((grid * grid, CELL_FIELDS), dtype=np.float32)
    target[:, len(LABELS)] = 1.0  # "nothing" until a word lands in the cell
    cell = input_size / grid
    for (x0, y0, x1, y1), class_id in zip(boxes, classes, strict=True):
        cx, cy = (x0 + x1) / 2 / cell, (y0 + y1) / 2 / cell
        index = min(int(cy), grid - 1) * grid + min(int(cx), grid - 1)
        if target[index, -1] == 1.0:
            continue  # one word per cell, as in the seed's data
        target[index, :CLASS_FIELDS] = 0.0
        target[index, int(class_id)] = 1.0
        target[index, CLASS_FIELDS:] = (
            cx,
            cy,
            (x1 - x0) / input_size,
            (y1 - y0) / input_size,
            1.0,
        )
    return target


def humble_loss(y_true, y_pred, grid: int = GRID):
    """The seed's loss for (batch, grid * grid, 8), summed over cells."""
    offsets = ops.convert_to_tensor(cell_offsets(grid))
    class_error = ops.sum(ops.square(y_true[..., : len(LABELS)] - y_pred[..., : len(LABELS)]), -1)
    true_xy, true_wh = y_true[..., 3:5], y_true[..., 5:7]
    pred_xy, pred_wh = y_pred[..., 3:5] + offsets, y_pred[..., 5:7]
    present = y_true[..., 7]
    xy_error = ops.sum(ops.square(true_xy - pred_xy), -1) * present
    wh_error = ops.sum(ops.square(ops.sqrt(true_wh) - ops.sqrt(pred_wh)), -1) * present
    # IoU of the predicted and true boxes, both in image units.
    distance = ops.abs(pred_xy - true_xy) / grid
    intersection_wh = ops.maximum(0.0, (pred_wh + true_wh) / 2 - distance)
    intersection_wh = ops.minimum(intersection_wh, ops.minimum(pred_wh, true_wh))
    intersection = intersection_wh[..., 0] * intersection_wh[..., 1]
    union = pred_wh[..., 0] * pred_wh[..., 1] + true_wh[..., 0] * true_wh[..., 1] - intersection
    iou = intersection / ops.maximum(union, 1e-9)
    confidence_error = ops.square(present * iou - y_pred[..., 7]) * present
    return ops.sum(class_error + xy_error + wh_error + confidence_error, axis=-1)


def humble_to_grid(cells: np.ndarray, grid: int = GRID) -> np.ndarray:
    """Seed outputs (N, grid * grid, 8) -> the common layout (N, grid, grid, 1, 5 + classes).

    The common layout's objectness is the seed's confidence, so a box scores
    confidence x class probability like our detector's.
    """
    cells = np.asarray(cells, dtype=np.float32)
    common = np.concatenate([cells[..., 7:8], cells[..., 3:7], cells[..., : len(LABELS)]], axis=-1)
    return common.reshape(len(cells), grid, grid, 1, common.shape[-1])
