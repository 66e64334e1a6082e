"""modelkit.detection: letterbox, grid decoding, NMS and `detect` on hand-made grids."""

from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

from modelkit.detection import (
    PAD_COLOR,
    Letterbox,
    box_iou,
    decode_grid,
    detect,
    letterbox_image,
    non_max_suppression,
    postprocess,
)

LABELS = ["chat", "rat"]


def test_letterbox_scales_centres_and_pads():
    image = Image.new("RGB", (200, 100), (10, 20, 30))
    canvas, placement = letterbox_image(image, 100)
    assert canvas.size == (100, 100)
    assert placement == Letterbox(scale=0.5, pad_x=0, pad_y=25, width=200, height=100)
    pixels = np.asarray(canvas)
    assert tuple(pixels[10, 50]) == PAD_COLOR and tuple(pixels[90, 50]) == PAD_COLOR
    assert tuple(pixels[50, 50]) == (10, 20, 30)


def test_letterbox_upscales_small_images():
    canvas, placement = letterbox_image(Image.new("RGB", (64, 32)), 256)
    assert placement.scale == 4.0 and (placement.pad_x, placement.pad_y) == (0, 64)
    assert canvas.size == (256, 256)


def test_boxes_map_back_to_original_pixels_and_are_clipped():
    placement = Letterbox(scale=0.5, pad_x=0, pad_y=25, width=200, height=100)
    boxes = np.array([[20.0, 30.0, 60.0, 40.0]])
    np.testing.assert_allclose(placement.to_original(boxes), [[40, 10, 120, 30]])
    np.testing.assert_allclose(placement.to_original(placement.to_input(boxes)), boxes)
    # A box reaching into the padding and past the right edge is clipped to the image.
    np.testing.assert_allclose(
        placement.to_original(np.array([[90.0, 20.0, 110.0, 30.0]])), [[180, 0, 200, 10]]
    )


def test_box_iou_known_values():
    a = np.array([[0.0, 0.0, 10.0, 10.0]])
    b = np.array([[5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 10.0, 10.0]])
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0.0, 1.0]])


def hand_made_grid() -> np.ndarray:
    """A 4x4 grid, B=2, on a 64-pixel input (16-pixel cells)."""
    grid = np.zeros((4, 4, 2, 7), dtype=np.float32)
    # Row 1, column 2, slot 0: a "rat" centred mid-cell, 16x8 pixels.
    grid[1, 2, 0] = [0.8, 0.5, 0.5, 0.25, 0.125, 0.1, 0.9]
    # Row 3, column 0, slot 1: a "chat" at the cell's top-left corner, 32x16 pixels.
    grid[3, 0, 1] = [0.9, 0.0, 0.0, 0.5, 0.25, 0.6, 0.2]
    return grid


def test_decode_grid_places_boxes_by_cell_and_offset():
    boxes, scores, classes = decode_grid(hand_made_grid(), input_size=64, confidence=0.1)
    order = np.argsort(classes)
    np.testing.assert_allclose(boxes[order], [[-16, 40, 16, 56], [32, 20, 48, 28]], atol=1e-5)
    np.testing.assert_allclose(scores[order], [0.9 * 0.6, 0.8 * 0.9], rtol=1e-6)
    assert classes[order].tolist() == [0, 1]


def test_decode_grid_applies_the_confidence_threshold():
    _, scores, classes = decode_grid(hand_made_grid(), input_size=64, confidence=0.6)
    assert classes.tolist() == [1] and scores[0] == pytest.approx(0.72)


def test_nms_suppresses_overlaps_of_the_same_class_only():
    boxes = np.array(
        [
            [0, 0, 10, 10],  # chat, 0.9
            [1, 0, 11, 10],  # chat, 0.8: IoU 0.82 with the first -> suppressed
            [1, 0, 11, 10],  # rat, 0.7: another class -> kept
            [30, 30, 40, 40],  # chat, 0.6: far away -> kept
        ],
        dtype=np.float32,
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    classes = np.array([0, 0, 1, 0])
    assert non_max_suppression(boxes, scores, classes, 0.5).tolist() == [0, 2, 3]
    assert non_max_suppression(boxes, scores, classes, 0.9).tolist() == [0, 1, 2, 3]
    assert non_max_suppression(boxes, scores, classes, 0.5, max_detections=2).tolist() == [0, 2]
    assert non_max_suppression(boxes[:0], scores[:0], classes[:0], 0.5).tolist() == []


def test_postprocess_returns_labelled_boxes_in_original_pixels():
    grid = hand_made_grid()
    grid[1, 2, 1] = [0.7, 0.55, 0.5, 0.25, 0.125, 0.1, 0.9]  # duplicate "rat", suppressed
    # The original was 128x64, letterboxed to 64: scale 0.5, 16 pixels of padding at the top.
    placement = Letterbox(scale=0.5, pad_x=0, pad_y=16, width=128, height=64)
    detections = postprocess(grid, placement, 64, LABELS, confidence=0.3, iou_threshold=0.45)
    assert [d.label for d in detections] == ["rat", "chat"]
    assert detections[0].box == (64.0, 8.0, 96.0, 24.0)
    assert detections[0].confidence == pytest.approx(0.72)
    assert detections[1].box == (0.0, 48.0, 32.0, 64.0)  # clipped at the left and bottom
    assert detections[1].to_dict()["class_id"] == 0


class GridModel:
    """A model whose grid is known, with the metadata keys `detect` reads."""

    metadata: ClassVar[dict] = {
        "detection": {
            "labels": LABELS,
            "input_size": 64,
            "confidence_threshold": 0.3,
            "nms_iou_threshold": 0.45,
        }
    }

    def __init__(self) -> None:
        self.inputs = None

    def predict(self, inputs):
        self.inputs = inputs
        return np.stack([hand_made_grid()] * len(inputs))


def test_detect_letterboxes_each_image_and_decodes_its_grid():
    model = GridModel()
    images = [Image.new("RGB", (128, 64), (255, 255, 255)), Image.new("RGB", (64, 64))]
    results = detect(images, model)
    assert model.inputs.shape == (2, 64, 64, 3) and model.inputs.dtype == np.float32
    assert model.inputs[0, 0, 0, 0] == pytest.approx(114 / 255)  # padding above the wide image
    assert model.inputs[0, 32, 32, 0] == pytest.approx(1.0)
    assert [d.box for d in results[0]] == [(64.0, 8.0, 96.0, 24.0), (0.0, 48.0, 32.0, 64.0)]
    assert [d.box for d in results[1]] == [(32.0, 20.0, 48.0, 28.0), (0.0, 40.0, 16.0, 56.0)]
    assert [len(r) for r in detect(images, model, confidence=0.75)] == [0, 0]
    assert detect([], model) == []


class Reader:
    """A reader whose answer is known: p(chat) 0.8, and the word in the crop's middle."""

    metadata: ClassVar[dict] = {}

    def predict(self, crops):
        return np.tile(np.float32([0.8, 0.1, 0.1, 0.25, 0.25, 0.75, 0.75]), (len(crops), 1))


@pytest.mark.parametrize(
    ("weight", "score"), [(None, 0.25 * 0.8), (1.0, 0.2), (0.5, 0.4), (0.0, 0.8)]
)
def test_a_reading_detectors_score_weighs_the_grids_objectness_by_its_setting(weight, score):
    # One proposal of objectness 0.25 whose crop the reader reads as "chat" at 0.8.
    grid = np.zeros((4, 4, 1, 8), dtype=np.float32)
    grid[1, 2, 0] = [0.25, 0.5, 0.5, 0.25, 0.125, 1.0, 0.0, 0.0]
    settings = {
        "labels": LABELS, "input_size": 64, "reader": {"signature": "reader"},
        "proposal_threshold": 0.01, "max_proposals": 8, "confidence_threshold": 0.1,
        "nms_iou_threshold": 0.45,
    }  # fmt: skip
    if weight is not None:  # versions before 4 have no such key: the plain product
        settings["objectness_weight"] = weight

    class Grid:
        metadata: ClassVar[dict] = {"detection": settings}

        def predict(self, inputs):
            return np.stack([grid] * len(inputs))

    (found,) = detect([Image.new("RGB", (64, 64), (255, 255, 255))], Grid(), reader=Reader())
    assert len(found) == 1 and found[0].label == "chat"
    assert found[0].confidence == pytest.approx(score, rel=1e-5)
