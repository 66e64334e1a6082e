"""Request image decoding: formats, orientation, colour modes, and every way it can fail."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app.errors import CorruptImage, ImageTooLarge, UnsupportedMediaType
from app.images import decode_image, encode_gray_png, tile, to_gray8
from tests.app.images import encoded, picture, png_header_only, rotated_jpeg

LIMIT = 10_000_000


@pytest.mark.parametrize("format", ["PNG", "JPEG", "WEBP", "GIF", "BMP"])
def test_supported_formats_decode_to_rgb_of_the_same_size(format: str) -> None:
    image = decode_image(encoded(picture(64, 48), format), LIMIT)
    assert image.mode == "RGB"
    assert image.size == (64, 48)
    red = np.asarray(image)[5, 5]
    assert red[0] > 180 and red[1] < 80, "the red corner survives decoding"


def test_gif_gives_its_first_frame() -> None:
    first, second = picture(32, 32), Image.new("RGB", (32, 32), (0, 0, 255))
    data = encoded(first, "GIF", save_all=True, append_images=[second])
    assert tuple(np.asarray(decode_image(data, LIMIT))[2, 2]) != (0, 0, 255)


def test_exif_orientation_is_applied() -> None:
    assert decode_image(rotated_jpeg(40, 20), LIMIT).size == (20, 40)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "1", "I;16"])
def test_any_mode_becomes_rgb(mode: str) -> None:
    format = "JPEG" if mode == "CMYK" else "PNG"
    assert decode_image(encoded(picture(16, 16, mode), format), LIMIT).mode == "RGB"


def test_transparency_is_flattened_onto_white() -> None:
    clear = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    assert tuple(np.asarray(decode_image(encoded(clear, "PNG"), LIMIT))[0, 0]) == (255, 255, 255)


@pytest.mark.parametrize(
    "data",
    [b"plain text, not an image", encoded(picture(), "TIFF"), b"%PDF-1.7\n", b"\x00" * 64],
)
def test_not_an_image_or_an_unsupported_format_is_415(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType) as refused:
        decode_image(data, LIMIT)
    assert refused.value.status_code == 415


@pytest.mark.parametrize("format", ["PNG", "JPEG"])
def test_a_truncated_image_is_422(format: str) -> None:
    data = encoded(picture(200, 200), format)
    with pytest.raises(CorruptImage) as refused:
        decode_image(data[: len(data) // 2], LIMIT)
    assert refused.value.status_code == 422


def test_an_empty_body_is_422() -> None:
    with pytest.raises(CorruptImage):
        decode_image(b"", LIMIT)


@pytest.mark.parametrize("side", [5_000, 100_000])
def test_too_many_pixels_is_413_before_decoding(side: int) -> None:
    bomb = png_header_only(side, side)
    assert len(bomb) < 200
    with pytest.raises(ImageTooLarge) as refused:
        decode_image(bomb, LIMIT)
    assert refused.value.status_code == 413


def test_the_pixel_limit_is_the_configured_one() -> None:
    data = encoded(picture(100, 100), "PNG")
    assert decode_image(data, 10_000).size == (100, 100)
    with pytest.raises(ImageTooLarge):
        decode_image(data, 9_999)


def test_grayscale_output_and_tiling() -> None:
    pixels = np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(28, 28, 1)
    image = to_gray8(pixels)
    assert image.dtype == np.uint8 and image.shape == (28, 28)
    assert image[0, 0] == 0 and image[-1, -1] == 255
    sheet = tile(np.stack([image] * 5), columns=3)
    assert sheet.shape == (56, 84)
    np.testing.assert_array_equal(sheet[28:, 28:56], image)
    np.testing.assert_array_equal(sheet[28:, 56:], 0)  # the empty sixth place


@pytest.mark.parametrize("shape", [(28, 28), (1, 1), (3, 200), (57, 2)])
def test_the_gray_png_writer_gives_what_pil_reads_back(shape: tuple[int, int]) -> None:
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    data = encode_gray_png(pixels)
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # checks every chunk's CRC and the zlib stream
        assert (image.format, image.mode, image.size) == ("PNG", "L", shape[::-1])
        np.testing.assert_array_equal(np.asarray(image), pixels)
