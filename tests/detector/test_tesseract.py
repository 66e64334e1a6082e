"""The Tesseract baseline: finds "chat" and "rat" where they are drawn, and nothing else."""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from modelkit.detection import box_iou
from training.detector import tesseract
from training.detector.evaluate import Detections
from training.detector.tesseract import available, tesseract_detect, upscale_factor

pytestmark = pytest.mark.skipif(
    not available(),
    reason="Tesseract OCR is not installed (Debian `tesseract-ocr`, PyPI `pytesseract`)",
)

FONT_PATH = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
SIZE = (440, 120)
# Left edges far enough apart that no two words' boxes could merge into one line of text.
WORDS = (("chat", 20), ("chart", 170), ("rat", 340))
TOP = 40


@functools.cache
def font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_PATH), size=40)


def ink_box(word: str, x: int) -> tuple[int, int, int, int]:
    """The word's inked pixels when drawn alone at (x, TOP): x_min, y_min, x_max, y_max."""
    mask = Image.new("L", SIZE, 0)
    ImageDraw.Draw(mask).text((x, TOP), word, fill=255, font=font())
    box = mask.getbbox()
    assert box is not None
    return box


def render(words: tuple[tuple[str, int], ...]) -> Image.Image:
    image = Image.new("RGB", SIZE, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for word, x in words:
        draw.text((x, TOP), word, fill=(0, 0, 0), font=font())
    return image


def blank() -> Image.Image:
    return Image.new("RGB", SIZE, (255, 255, 255))


@pytest.fixture(scope="module")
def three_words() -> Image.Image:
    return render(WORDS)


@pytest.fixture(scope="module")
def found(three_words: Image.Image) -> Detections:
    (result,) = tesseract_detect([three_words])
    return result


def test_words_are_drawn_apart():
    boxes = [ink_box(word, x) for word, x in WORDS]
    for (_, _, right, _), (left, _, _, _) in itertools.pairwise(boxes):
        assert left - right >= 30


def test_finds_one_chat_and_one_rat_on_their_ink(found: Detections):
    assert found.boxes.shape == (2, 4) and found.boxes.dtype == np.float32
    assert found.scores.dtype == np.float32 and found.classes.dtype == np.int64
    assert sorted(found.classes.tolist()) == [0, 1]
    assert np.all((found.scores > 0) & (found.scores <= 1))
    for (word, x), class_id in ((WORDS[0], 0), (WORDS[2], 1)):
        truth = np.array([ink_box(word, x)], dtype=np.float32)
        mine = found.boxes[found.classes == class_id]
        assert len(mine) == 1
        assert box_iou(mine, truth)[0, 0] >= 0.5, (word, mine, truth)


def test_nothing_for_the_lookalike(found: Detections):
    chart = np.array([ink_box(*WORDS[1])], dtype=np.float32)
    assert np.all(box_iou(found.boxes, chart) == 0.0)


def test_blank_image_gives_no_detections():
    (result,) = tesseract_detect([blank()])
    assert result.boxes.shape == (0, 4) and result.boxes.dtype == np.float32
    assert result.scores.shape == (0,) and result.classes.shape == (0,)
    assert result.classes.dtype == np.int64


def test_results_follow_input_order():
    rat_only, chat_only = render((WORDS[2],)), render((WORDS[0],))
    first, second = tesseract_detect([rat_only, chat_only])
    assert first.classes.tolist() == [1] and second.classes.tolist() == [0]


def test_two_processes_match_one(three_words: Image.Image):
    images = [three_words, blank(), render((WORDS[2],))]
    serial = tesseract_detect(images)
    pooled = tesseract_detect(images, processes=2)
    assert len(pooled) == len(images)
    for a, b in zip(serial, pooled, strict=True):
        assert np.array_equal(a.boxes, b.boxes)
        assert np.array_equal(a.scores, b.scores)
        assert np.array_equal(a.classes, b.classes)


def test_upscale_rule_and_boxes_in_original_pixels(found: Detections, three_words: Image.Image):
    assert upscale_factor(SIZE) == 2 and upscale_factor((999, 10)) == 2
    assert upscale_factor((1000, 10)) == 1 and upscale_factor((10, 1600)) == 1
    (plain,) = tesseract_detect([three_words], upscale=False)
    assert sorted(plain.classes.tolist()) == [0, 1]
    for class_id in (0, 1):
        iou = box_iou(
            plain.boxes[plain.classes == class_id], found.boxes[found.classes == class_id]
        )
        assert iou[0, 0] >= 0.7


def test_empty_list_gives_empty_list():
    assert tesseract_detect([], processes=2) == []


def test_missing_tesseract_is_a_clear_error(monkeypatch: pytest.MonkeyPatch):
    import pytesseract

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    assert not tesseract.available()
    with pytest.raises(RuntimeError, match=r"tesseract-ocr.*pytesseract"):
        tesseract_detect([blank()])
