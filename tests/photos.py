"""Test images shared by the detector's tests and the browser tests of the playground."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import skimage.data
from PIL import Image, ImageDraw, ImageFont

__all__ = ["FONT", "photo_with_words"]

FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"


def photo_with_words() -> tuple[Image.Image, dict[str, tuple[int, int, int, int]]]:
    """scikit-image's coffee photo with chat, rat and two look-alikes written on it; returns the
    image (600 x 400) and each word's box (x_min, y_min, x_max, y_max) in its pixels."""
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
