"""Target encoding and both losses on hand-computed cases."""

import numpy as np
import pytest

pytest.importorskip("keras")

from training.detector.humble import (
    cell_offsets,
    encode_humble_targets,
    humble_loss,
    humble_to_grid,
)
from training.detector.model import (
    LAMBDA_COORD,
    LAMBDA_NOOBJ,
    detection_loss,
    encode_targets,
)

SIZE = 64  # an 8x8 grid at stride 8


def loss_value(loss, y_true, y_pred) -> float:
    return float(np.asarray(loss(y_true[None], y_pred[None]))[0])


def one_word_target() -> np.ndarray:
    # A 16x8 "rat" centred at (44, 20): cell (row 2, col 5), centre (0.5, 0.5) in the cell.
    return encode_targets(
        np.array([[36.0, 16.0, 52.0, 24.0]]), np.array([1]), input_size=SIZE, boxes_per_cell=2
    )


def test_encode_targets_puts_the_box_in_the_cell_of_its_centre():
    target = one_word_target()
    assert target.shape == (8, 8, 2, 7)
    np.testing.assert_allclose(target[2, 5, 0], [1, 0.5, 0.5, 16 / SIZE, 8 / SIZE, 0, 1])
    assert target[..., 0].sum() == 1


def test_encode_targets_fills_slots_smallest_first():
    boxes = np.array([[0.0, 0.0, 14.0, 14.0], [2.0, 2.0, 10.0, 10.0]])  # both centred in (0, 0)
    target = encode_targets(boxes, np.array([0, 1]), input_size=SIZE, boxes_per_cell=2)
    assert target[0, 0, 0, 6] == 1 and target[0, 0, 0, 3] == pytest.approx(8 / SIZE)
    assert target[0, 0, 1, 5] == 1 and target[0, 0, 1, 3] == pytest.approx(14 / SIZE)


def test_detection_loss_is_zero_when_the_prediction_is_the_target():
    target = one_word_target()
    assert loss_value(detection_loss, target, target) == pytest.approx(0.0, abs=1e-3)


def test_detection_loss_coordinate_terms_match_hand_computation():
    target = one_word_target()
    base = loss_value(detection_loss, target, target)
    shifted = target.copy()
    shifted[2, 5, 0, 1] += 0.1  # centre x off by a tenth of a cell
    assert loss_value(detection_loss, target, shifted) - base == pytest.approx(
        LAMBDA_COORD * 0.01, rel=1e-3
    )
    resized = target.copy()
    resized[2, 5, 0, 3] = 0.0625  # w 0.25 -> 0.0625: sqrt goes 0.5 -> 0.25
    assert loss_value(detection_loss, target, resized) - base == pytest.approx(
        LAMBDA_COORD * 0.25**2, rel=1e-3
    )


def test_detection_loss_objectness_terms_match_hand_computation():
    target = one_word_target()
    base = loss_value(detection_loss, target, target)
    missed = target.copy()
    missed[2, 5, 0, 0] = 0.5
    assert loss_value(detection_loss, target, missed) - base == pytest.approx(np.log(2), rel=1e-3)
    false_alarm = target.copy()
    false_alarm[0, 0, 0, 0] = 0.5
    assert loss_value(detection_loss, target, false_alarm) - base == pytest.approx(
        LAMBDA_NOOBJ * np.log(2), rel=1e-3
    )


def test_detection_loss_masks_boxes_and_classes_of_empty_slots():
    target = one_word_target()
    base = loss_value(detection_loss, target, target)
    noisy = target.copy()
    rng = np.random.default_rng(0)
    empty = noisy[..., 0] == 0
    noisy[..., 1:][empty] = rng.uniform(0.05, 0.95, (int(empty.sum()), 6))
    assert loss_value(detection_loss, target, noisy) == pytest.approx(base, abs=1e-4)


def humble_prediction_equal_to(target: np.ndarray) -> np.ndarray:
    # The network predicts the centre relative to its cell; the target holds it with the offset.
    prediction = target.copy()
    prediction[:, 3:5] -= cell_offsets()
    return prediction


def seed_target() -> np.ndarray:
    # "chat" 24x7 in the top-right cell, "rat" 18x7 in the bottom-left, two empty cells.
    boxes = np.array([[36.0, 10.0, 60.0, 17.0], [4.0, 40.0, 22.0, 47.0]])
    return encode_humble_targets(boxes, np.array([0, 1]))


def test_encode_humble_targets_uses_the_seed_layout():
    target = seed_target()
    np.testing.assert_allclose(target[1], [1, 0, 0, 1.5, 13.5 / 32, 24 / 64, 7 / 64, 1])
    np.testing.assert_allclose(target[2], [0, 1, 0, 13 / 32, 1 + 11.5 / 32, 18 / 64, 7 / 64, 1])
    np.testing.assert_allclose(target[0], [0, 0, 1, 0, 0, 0, 0, 0])


def test_humble_loss_is_zero_when_the_prediction_is_the_target():
    target = seed_target()
    prediction = humble_prediction_equal_to(target)
    assert loss_value(humble_loss, target, prediction) == pytest.approx(0.0, abs=1e-6)


def test_humble_loss_terms_match_hand_computation():
    target = seed_target()
    prediction = humble_prediction_equal_to(target)
    prediction[1, 3] += 0.1  # centre x off by 0.1 cell (3.2 px): 0.01
    prediction[2, 0] = 0.5  # class error on an occupied cell: 0.25
    prediction[0, 1] = 0.3  # class error on an empty cell counts too: 0.09
    # The shift also lowers the IoU the confidence is trained towards: 20.8x7 overlap of 24x7.
    iou = 20.8 * 7 / (2 * 24 * 7 - 20.8 * 7)
    expected = 0.01 + 0.25 + 0.09 + (1.0 - iou) ** 2
    assert loss_value(humble_loss, target, prediction) == pytest.approx(expected, rel=1e-3)


def test_humble_loss_masks_box_and_confidence_of_empty_cells():
    target = seed_target()
    prediction = humble_prediction_equal_to(target)
    prediction[[0, 3], 2:] = 0.7  # "nothing", box and confidence of the empty cells
    assert loss_value(humble_loss, target, prediction) == pytest.approx(0.0, abs=1e-6)


def test_humble_confidence_is_trained_towards_the_iou():
    target = seed_target()
    prediction = humble_prediction_equal_to(target)
    prediction[1, 5] = target[1, 5] / 2  # half the width, same centre: IoU 0.5
    sqrt_error = (np.sqrt(target[1, 5]) - np.sqrt(target[1, 5] / 2)) ** 2
    confidence_error = (0.5 - 1.0) ** 2
    assert loss_value(humble_loss, target, prediction) == pytest.approx(
        sqrt_error + confidence_error, rel=1e-3
    )


def test_humble_to_grid_gives_the_common_layout():
    cells = humble_prediction_equal_to(seed_target())[None]
    grid = humble_to_grid(cells)
    assert grid.shape == (1, 2, 2, 1, 7)
    # Cell 1 is row 0, column 1; objectness is the seed's confidence, classes come last.
    np.testing.assert_allclose(grid[0, 0, 1, 0], [1, 0.5, 13.5 / 32, 24 / 64, 7 / 64, 1, 0])
