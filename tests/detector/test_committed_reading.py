"""The committed reading detectors (models/detector/2, 3 and 4) on a photograph never seen."""

from pathlib import Path

import numpy as np
import pytest

from modelkit import load_model
from modelkit.detection import box_iou, detect
from tests.photos import photo_with_words

MODELS = Path(__file__).resolve().parents[2] / "models"


READING_VERSIONS = (2, 3, 4, 5)


@pytest.fixture(scope="module", params=READING_VERSIONS, ids=lambda v: f"v{v}")
def reading(request):
    grid = load_model(MODELS, "detector", request.param)
    reader = load_model(MODELS, "detector", request.param, signature="reader")
    return grid, reader


def test_finds_both_words_and_no_lookalike_on_a_photo(reading):
    grid, reader = reading
    image, boxes = photo_with_words()
    (found,) = detect([image], grid, reader=reader)
    by_label = {label: [d for d in found if d.label == label] for label in ("chat", "rat")}
    for label in ("chat", "rat"):
        assert len(by_label[label]) == 1, f"{label}: {found}"
        iou = box_iou(np.array([by_label[label][0].box]), np.array([boxes[label]]))[0, 0]
        assert iou >= 0.5, (label, by_label[label][0].box, boxes[label])
    for lookalike in ("chart", "cat"):
        overlaps = box_iou(
            np.array([d.box for d in found]).reshape(-1, 4), np.array([boxes[lookalike]])
        )
        assert (overlaps < 0.3).all(), f"{lookalike} was read as a target: {found}"


def test_is_a_reading_detector_and_keeps_v1_pinnable(reading):
    grid, _ = reading
    assert grid.metadata["detection"]["reader"]["signature"] == "reader"
    v1 = load_model(MODELS, "detector", 1)
    assert "reader" not in v1.metadata["detection"]
    (found,) = detect([photo_with_words()[0]], v1)  # still serves, one stage
    assert isinstance(found, list)


def test_the_newest_version_is_what_loads_by_default():
    assert load_model(MODELS, "detector").version == max(READING_VERSIONS)
