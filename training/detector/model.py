"""Our detector: a small fully convolutional YOLO with one stride-8 output grid.

Backbone: Conv-BatchNorm-LeakyReLU blocks down to stride 32 (a receptive field of about 250
pixels, enough for a word that spans the whole input), then a light top-down path (1x1 conv,
2x upsampling, concatenation) brings that context back to the stride-8 features, where a 1x1
head predicts, per cell and box slot, `[objectness, x, y, w, h, p(chat), p(rat)]` through a
sigmoid. Stride 8 keeps words whose letterboxed height is ~5 pixels apart in separate cells.

Targets: the cell holding a box's centre is responsible for it; the B slots of a cell take its
objects smallest first (two word centres in one 8-pixel cell are rare, B=2 covers them).
Loss per image, summed over the grid (YOLO v1 weighting): lambda_coord x squared error of the
centre (cell units) and of sqrt(w), sqrt(h) on responsible slots; binary cross-entropy of
objectness on responsible slots plus lambda_noobj x the same on the others; binary
cross-entropy of the class probabilities on responsible slots. Objectness is trained towards 1
rather than towards the IoU of the predicted box (YOLO v1): under a CPU budget the IoU target
starts near 0 and slows learning, and mAP only needs the scores to rank, which they do.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from training.detector.dataset import LABELS

INPUT_SIZE = 256
STRIDE = 8
BOXES_PER_CELL = 2
WIDTH = 32
LAMBDA_COORD = 5.0
LAMBDA_NOOBJ = 0.5
OBJECTNESS_PRIOR = 0.01
EPSILON = 1e-7
OUTPUT_FIELDS = ("objectness", "x", "y", "w", "h", *(f"p({label})" for label in LABELS))


def conv_block(x, filters: int, kernel_size: int = 3, strides: int = 1):
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.LeakyReLU(negative_slope=0.1)(x)


def build_detector(
    input_size: int = INPUT_SIZE,
    width: int = WIDTH,
    boxes_per_cell: int = BOXES_PER_CELL,
    classes: int = len(LABELS),
) -> keras.Model:
    if input_size % 32:
        raise ValueError("the input size must be a multiple of 32")
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = conv_block(inputs, width // 2, strides=2)  # stride 2
    x = conv_block(x, width, strides=2)  # 4
    x = conv_block(x, width)
    x = conv_block(x, 2 * width, strides=2)  # 8
    stride8 = conv_block(x, 2 * width)
    x = conv_block(stride8, 3 * width, strides=2)  # 16
    stride16 = conv_block(x, 3 * width)
    x = conv_block(stride16, 4 * width, strides=2)  # 32
    x = conv_block(x, 4 * width)
    x = conv_block(x, 4 * width)
    x = layers.UpSampling2D(2)(conv_block(x, 2 * width, kernel_size=1))
    x = conv_block(layers.Concatenate()([x, stride16]), 3 * width)
    x = layers.UpSampling2D(2)(conv_block(x, width, kernel_size=1))
    x = conv_block(layers.Concatenate()([x, stride8]), 2 * width)
    fields = len(OUTPUT_FIELDS) - len(LABELS) + classes
    head = layers.Conv2D(boxes_per_cell * fields, 1, name="head")
    x = layers.Activation("sigmoid")(head(x))
    grid = input_size // STRIDE
    outputs = layers.Reshape((grid, grid, boxes_per_cell, fields), name="grid")(x)
    # Start objectness at a low prior so the many empty cells do not swamp the first steps.
    bias = np.zeros((boxes_per_cell, fields), dtype="float32")
    bias[:, 0] = np.log(OBJECTNESS_PRIOR / (1 - OBJECTNESS_PRIOR))
    head.bias.assign(bias.reshape(-1))
    return keras.Model(inputs, outputs, name="detector")


def encode_targets(
    boxes: np.ndarray,
    classes: np.ndarray,
    input_size: int = INPUT_SIZE,
    boxes_per_cell: int = BOXES_PER_CELL,
    num_classes: int = len(LABELS),
) -> np.ndarray:
    """Boxes (N, 4) in input pixels -> the target grid (S, S, B, 5 + C)."""
    grid = input_size // STRIDE
    target = np.zeros((grid, grid, boxes_per_cell, 5 + num_classes), dtype=np.float32)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for index in np.argsort(areas, kind="stable"):
        x0, y0, x1, y1 = boxes[index]
        cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
        col, row = min(int(cx), grid - 1), min(int(cy), grid - 1)
        free = np.flatnonzero(target[row, col, :, 0] == 0)
        if len(free) == 0:
            continue
        slot = free[0]
        target[row, col, slot, :5] = (
            1.0,
            cx - col,
            cy - row,
            (x1 - x0) / input_size,
            (y1 - y0) / input_size,
        )
        target[row, col, slot, 5 + int(classes[index])] = 1.0
    return target


def _binary_crossentropy(target, probability):
    probability = ops.clip(probability, EPSILON, 1.0 - EPSILON)
    return -(target * ops.log(probability) + (1.0 - target) * ops.log(1.0 - probability))


def detection_loss(
    y_true, y_pred, lambda_coord: float = LAMBDA_COORD, lambda_noobj: float = LAMBDA_NOOBJ
):
    """Per-image loss for grids (batch, S, S, B, 5 + C); see the module docstring."""
    responsible = y_true[..., 0]
    centre_error = ops.sum(ops.square(y_true[..., 1:3] - y_pred[..., 1:3]), axis=-1)
    size_error = ops.sum(
        ops.square(ops.sqrt(y_true[..., 3:5]) - ops.sqrt(ops.clip(y_pred[..., 3:5], EPSILON, 1.0))),
        axis=-1,
    )
    objectness = _binary_crossentropy(responsible, y_pred[..., 0])
    class_error = ops.sum(_binary_crossentropy(y_true[..., 5:], y_pred[..., 5:]), axis=-1)
    per_slot = (
        responsible * (lambda_coord * (centre_error + size_error) + objectness + class_error)
        + (1.0 - responsible) * lambda_noobj * objectness
    )
    return ops.sum(per_slot, axis=(1, 2, 3))
