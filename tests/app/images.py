"""Images for tests, built in memory."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def picture(width: int = 64, height: int = 48, mode: str = "RGB") -> Image.Image:
    """A left-to-right gradient with a red top-left quadrant, so orientation is visible."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[..., 1] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    pixels[: height // 2, : width // 2] = (255, 0, 0)
    return Image.fromarray(pixels).convert(mode)


def encoded(image: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares `width` x `height` pixels in its header and holds almost nothing:
    what a decompression bomb looks like before it is decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def rotated_jpeg(width: int = 40, height: int = 20) -> bytes:
    """A JPEG stored `width` x `height` with EXIF orientation 6: viewers show it rotated 90°."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(picture(width, height), "JPEG", exif=exif.tobytes())
