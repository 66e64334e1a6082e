"""Image decoding for requests, and PNG encoding for answers.

Decoding accepts PNG, JPEG, WebP, GIF (first frame) and BMP, whatever the client claims the
type is; checks the pixel count from the header before decoding any pixel (decompression
bombs); applies EXIF orientation; and returns RGB, with transparency flattened onto white.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from app.errors import CorruptImage, ImageTooLarge, UnsupportedMediaType

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
_BACKGROUND = (255, 255, 255)


def decode_image(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise CorruptImage("The image is empty.")
    try:
        with warnings.catch_warnings():
            # Our own limit below is the one that counts; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise UnsupportedMediaType(
            f"The file is not an image in a supported format ({', '.join(ALLOWED_FORMATS)})."
        ) from None
    except Image.DecompressionBombError:
        raise ImageTooLarge(f"The image has more than {max_pixels} pixels.") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptImage(f"The image header cannot be read: {exc}.") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"The image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}."
        )
    try:
        image.seek(0)
        image.load()
        image = ImageOps.exif_transpose(image)
        return _to_rgb(image)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptImage(f"The image is truncated or corrupt: {exc}.") from None


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def grayscale_to_image(pixels: np.ndarray) -> Image.Image:
    """A float image in [0, 1], shaped (H, W) or (H, W, 1), as an 8-bit grayscale image."""
    pixels = np.asarray(pixels, dtype=np.float32).reshape(pixels.shape[0], pixels.shape[1])
    return Image.fromarray(np.round(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8), mode="L")


def tile(images: list[Image.Image], columns: int, gap: int = 0) -> Image.Image:
    """Images of one size in a grid, row by row, `columns` wide."""
    width, height = images[0].size
    rows = -(-len(images) // columns)
    sheet = Image.new(
        images[0].mode,
        (columns * width + (columns - 1) * gap, rows * height + (rows - 1) * gap),
        0,
    )
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        sheet.paste(image, (column * (width + gap), row * (height + gap)))
    return sheet
