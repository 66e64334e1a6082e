"""The committed reading detectors (models/detector/2, 3 and 4) on a photograph never seen."""

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageDraw, ImageFont

from modelkit import load_model
from modelkit.detection import box_iou, detect

MODELS = Path(__file__).resolve().parents[2] / "models"
FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"


def photo_with_words() -> tuple[Image.Image, dict[str, tuple[int, int, int, int]]]:
    """scikit-image's coffee photo with chat, rat and two look-alikes written on it."""
    image = Image.fromarray(skimage.data.coffee()).convert("RGB")  # 600 x 400
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(str(FONT), 40)
    boxes = {}
    for word, origin in {
        "chat": (30, 20),
        "rat": (420, 330),
        "chart": (360, 20),
        "cat": (40, 330),
    }.items():
        draw.text(
            origin, word, font=font, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0)
        )
        boxes[word] = draw.textbbox(origin, word, font=font, stroke_width=2)
    return image, boxes


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
