"""Drawing detections on an image, on the caller's side.

The gateway can draw them itself (``/detect?format=png``), but that is a second run of the
detector when the caller also wants the boxes as data; drawing here costs one request.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from mgw._types import Detection

if TYPE_CHECKING:
    from PIL import Image

    from mgw._client import ImageInput

__all__ = ["draw_detections", "open_image"]

# One colour per label, in the order labels are first seen (the detector's are chat and rat).
_PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180))


def open_image(image: ImageInput) -> Image.Image:
    """An image in any form ``Gateway.detect`` takes, turned as its EXIF orientation says (as
    the gateway turns it before detecting, so the boxes fit) and in RGB."""
    from PIL import Image, ImageOps

    if isinstance(image, str | os.PathLike):
        opened = Image.open(Path(image))
    elif isinstance(image, bytes | bytearray | memoryview):
        opened = Image.open(io.BytesIO(bytes(image)))
    elif hasattr(image, "read"):
        opened = Image.open(image)  # type: ignore[arg-type]
    else:
        opened = image  # type: ignore[assignment]
    return ImageOps.exif_transpose(opened).convert("RGB")


def draw_detections(image: ImageInput, detections: Iterable[Detection]) -> Image.Image:
    """A copy of the image with each detection's box outlined and captioned with its label
    and confidence."""
    from PIL import ImageDraw, ImageFont

    canvas = open_image(image).copy()
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    line = max(2, round(min(canvas.size) / 200))
    colours: dict[str, tuple[int, int, int]] = {}
    for detection in detections:
        colour = colours.setdefault(detection.label, _PALETTE[len(colours) % len(_PALETTE)])
        box = detection.box
        draw.rectangle(box.as_tuple(), outline=colour, width=line)
        caption = f"{detection.label} {detection.confidence:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        x, y = box.x_min, max(0.0, box.y_min - (bottom - top) - 4)
        draw.rectangle((x, y, x + right - left + 4, y + bottom - top + 4), fill=colour)
        draw.text((x + 2, y + 2 - top), caption, fill=(255, 255, 255), font=font)
    return canvas
