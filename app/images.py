"""Image decoding for requests, and PNG encoding for answers (PIL, and a direct writer for
the small gray images of the VAE).

Decoding accepts PNG, JPEG, WebP, GIF (first frame) and BMP, whatever the client claims the
type is; checks the pixel count from the header before decoding any pixel (decompression
bombs); applies EXIF orientation; and returns RGB, with transparency flattened onto white.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib

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


def to_gray8(pixels: np.ndarray) -> np.ndarray:
    """Float images in [0, 1], shaped (..., H, W) or (..., H, W, 1), as 8-bit gray (..., H, W)."""
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.shape[-1] == 1 and pixels.ndim >= 3:
        pixels = pixels[..., 0]
    return np.round(np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8)


def tile(images: np.ndarray, columns: int, gap: int = 0) -> np.ndarray:
    """Gray images of one size, (n, H, W), in a grid row by row, `columns` wide."""
    count, height, width = images.shape
    rows = -(-count // columns)
    sheet = np.zeros(
        (rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap), images.dtype
    )
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        top, left = row * (height + gap), column * (width + gap)
        sheet[top : top + height, left : left + width] = image
    return sheet


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# zlib's fastest level: on the VAE's digits (812 bytes of rows each) it takes 12 µs an image
# against 23 µs at the default 6, for 4 % more bytes (6,796 against 6,545 for 16 images).
_PNG_ZLIB_LEVEL = 1


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_gray_png(pixels: np.ndarray) -> bytes:
    """An 8-bit grayscale image, (H, W) uint8, as PNG written here (RFC 2083: IHDR, one zlib
    IDAT with filter 0 on every row, IEND). For the VAE's 28 x 28 digits PIL's `save` took
    ~62 µs an image, mostly its plugin machinery; this takes the compression's 12 µs and
    little else (16 images: 0.99 ms with PIL, 0.2 ms here)."""
    height, width = pixels.shape
    rows = np.zeros((height, width + 1), dtype=np.uint8)  # each row: filter byte 0, then pixels
    rows[:, 1:] = pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit, grayscale
    return (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(rows.tobytes(), _PNG_ZLIB_LEVEL))
        + _png_chunk(b"IEND", b"")
    )
