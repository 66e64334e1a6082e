"""The reading detector (version 2): word proposals on a grid, then a reader on each crop.

Why two stages: at the grid's 256-pixel input a 10-pixel word in a 512-pixel photo is 5 pixels
tall, too small to tell "chat" from "that"; and a grid cell that must both find words and read
them learns texture ("grass looks like chat") long before letters. So the grid only proposes:
it is v1's network with a third class, "another word", trained on every word of the `real`
scenes (targets, look-alikes, paragraphs), and warm-started from v1. The reader then looks at
each proposal in the original image at its own resolution (a 32x96 grey crop, see
`modelkit.detection.reader_crop`), says chat, rat or another word, and puts the box on the
word's ink. It is small and cheap: at most `max_proposals` crops per image.

Reader: Conv-BN-ReLU blocks (24, 32, 48, 64, 96 filters; three stride-2 steps to 4x12), a
dense layer on the flattened map (position matters: "chat" and "that" differ at the left),
and one output row per crop: softmax over (chat, rat, other), then four sigmoids for the box
(x_min, y_min, x_max, y_max) as fractions of the crop. Loss: cross-entropy with label
smoothing 0.05, plus 5 x L1 of the box on crops that hold a target.

Its training crops: `training.detector.crops`.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from modelkit.detection import READER_HEIGHT, READER_WIDTH
from training.detector.crops import READER_CLASSES

LAMBDA_BOX = 5.0
LABEL_SMOOTHING = 0.05


def build_reader() -> keras.Model:
    inputs = keras.Input((READER_HEIGHT, READER_WIDTH, 1), name="crop")
    x = inputs
    for filters, strides in ((24, 2), (32, 1), (48, 2), (64, 1), (96, 2), (96, 1)):
        x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
    x = layers.Flatten()(x)
    x = layers.Dropout(0.2)(x)
    x = layers.Dense(128, activation="relu")(x)
    classes = layers.Dense(READER_CLASSES, activation="softmax", name="classes")(x)
    box = layers.Dense(4, activation="sigmoid", name="box")(x)
    outputs = layers.Concatenate(name="read")([classes, box])
    return keras.Model(inputs, outputs, name="reader")


def reader_loss(y_true, y_pred):
    """y_true: (N, one-hot classes + box + has-box); y_pred: (N, probabilities + box)."""
    classes = y_true[:, :READER_CLASSES]
    smoothed = classes * (1.0 - LABEL_SMOOTHING) + LABEL_SMOOTHING / READER_CLASSES
    probabilities = ops.clip(y_pred[:, :READER_CLASSES], 1e-7, 1.0)
    cross_entropy = -ops.sum(smoothed * ops.log(probabilities), axis=-1)
    has_box = y_true[:, -1]
    box_error = ops.sum(ops.abs(y_true[:, READER_CLASSES:-1] - y_pred[:, READER_CLASSES:]), axis=-1)
    return cross_entropy + LAMBDA_BOX * has_box * box_error


def warm_start(model: keras.Model, previous: keras.Model) -> int:
    """Copies every layer's weights from `previous` whose shapes match; returns how many."""
    copied = 0
    for new, old in zip(model.layers, previous.layers, strict=False):
        new_weights, old_weights = new.get_weights(), old.get_weights()
        if new_weights and [w.shape for w in new_weights] == [w.shape for w in old_weights]:
            new.set_weights(old_weights)
            copied += 1
    return copied
