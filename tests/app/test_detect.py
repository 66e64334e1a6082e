"""`POST /detect` on the committed detector: inputs, answers, drawing and every bad input."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from app.images import decode_image
from modelkit.detection import detect
from modelkit.repository import load_model, read_metadata
from tests.app.conftest import requires_model, serving
from tests.app.images import encoded, picture, png_header_only, rotated_jpeg

pytestmark = [pytest.mark.anyio, requires_model("detector")]

ONLY_DETECTOR = {"models": ["detector"]}


def scene(seed: int, width: int = 320, height: int = 240) -> Image.Image:
    """The words "chat" (upper left) and "rat" (lower right), what the detector looks for,
    at positions jittered by `seed`."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height), (250, 250, 245))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(12, height // 7))
    for word, (x, y) in (("chat", (0.08, 0.12)), ("rat", (0.55, 0.6))):
        jitter = rng.uniform(0, 0.08, 2)
        position = ((x + jitter[0]) * width, (y + jitter[1]) * height)
        draw.text(position, word, fill=(15, 15, 15), font=font)
    return image


def multipart(data: bytes, name: str = "image") -> dict[str, Any]:
    return {"files": {name: ("upload.bin", data, "application/octet-stream")}}


def direct_answer(
    models_root: Path, data: bytes, version: int | None = None, **parameters: Any
) -> list[dict[str, Any]]:
    """What modelkit's one-call helper finds in the same image, shaped as the route shapes it."""
    model = load_model(models_root, "detector", version)
    reader = None
    if model.contract.detection.reader:  # a reading detector: its reader too
        reader = load_model(models_root, "detector", model.version, signature="reader")
    (found,) = detect([decode_image(data, 10**8)], model, reader=reader, **parameters)
    return [
        {
            "label": d.label,
            "confidence": pytest.approx(d.confidence, abs=1e-5),
            "box": dict(zip(("x_min", "y_min", "x_max", "y_max"), d.box, strict=True)),
        }
        for d in found
    ]


async def test_multipart_and_base64_json_give_the_helpers_answer(models_root: Path) -> None:
    data = encoded(scene(1), "PNG")
    parameters = {"confidence": 0.05, "iou": 0.5, "max_detections": 20}
    async with serving(**ONLY_DETECTOR) as (client, _):
        as_file = await client.post("/detect", params=parameters, **multipart(data))
        as_json = await client.post(
            "/detect", params=parameters, json={"image": base64.b64encode(data).decode()}
        )
    assert as_file.status_code == 200, as_file.text
    body = as_file.json()
    assert body["model"] == {
        "name": "detector",
        "version": read_metadata(models_root, "detector")["version"],
    }
    assert body["image"] == {"width": 320, "height": 240}
    assert body["detections"] == direct_answer(models_root, data, **parameters)
    assert as_json.json() == body
    best = {}
    for detection in body["detections"]:
        box = detection["box"]
        assert 0 <= box["x_min"] < box["x_max"] <= 320 and 0 <= box["y_min"] < box["y_max"] <= 240
        assert detection["confidence"] >= 0.05
        best.setdefault(detection["label"], box)
    assert best["chat"]["x_max"] < 160 and best["chat"]["y_max"] < 120, "chat is upper left"
    assert best["rat"]["x_min"] > 160 and best["rat"]["y_min"] > 120, "rat is lower right"


async def test_default_thresholds_come_from_metadata(models_root: Path) -> None:
    data = encoded(scene(2), "PNG")
    async with serving(**ONLY_DETECTOR) as (client, _):
        answer = await client.post("/detect", **multipart(data))
    assert answer.json()["detections"] == direct_answer(models_root, data, max_detections=100)


async def test_a_pinned_one_stage_version_is_served_without_a_reader(models_root: Path) -> None:
    data = encoded(scene(2), "PNG")
    pinned = {"detector": {"version": 1}}
    async with serving(**ONLY_DETECTOR, model_settings=pinned) as (client, _):
        answer = await client.post("/detect", **multipart(data))
    assert answer.json()["model"] == {"name": "detector", "version": 1}
    assert answer.json()["detections"] == direct_answer(models_root, data, 1, max_detections=100)


async def test_max_detections_caps_the_answer() -> None:
    data = encoded(scene(3), "PNG")
    async with serving(**ONLY_DETECTOR) as (client, _):
        capped = await client.post(
            "/detect", params={"confidence": 0.0, "max_detections": 2}, **multipart(data)
        )
    assert len(capped.json()["detections"]) == 2


@pytest.mark.parametrize("format", ["JPEG", "WEBP", "GIF", "BMP"])
async def test_other_formats_are_accepted(format: str) -> None:
    async with serving(**ONLY_DETECTOR) as (client, _):
        answer = await client.post("/detect", **multipart(encoded(scene(4, 90, 70), format)))
    assert answer.status_code == 200
    assert answer.json()["image"] == {"width": 90, "height": 70}


async def test_exif_orientation_and_modes_are_handled() -> None:
    async with serving(**ONLY_DETECTOR) as (client, _):
        rotated = await client.post("/detect", **multipart(rotated_jpeg(80, 40)))
        rgba = await client.post("/detect", **multipart(encoded(picture(50, 30, "RGBA"), "PNG")))
        gray = await client.post("/detect", **multipart(encoded(picture(50, 30, "L"), "PNG")))
    assert rotated.json()["image"] == {"width": 40, "height": 80}
    assert rgba.status_code == gray.status_code == 200


async def test_png_format_draws_on_the_original_image() -> None:
    data = encoded(scene(5), "PNG")
    async with serving(**ONLY_DETECTOR) as (client, _):
        drawn = await client.post("/detect", params={"format": "png"}, **multipart(data))
        found = await client.post("/detect", **multipart(data))
    assert drawn.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(drawn.content))
    assert image.size == (320, 240)
    assert found.json()["detections"]
    assert not np.array_equal(np.asarray(image.convert("RGB")), np.asarray(scene(5)))


@pytest.mark.parametrize(
    ("request_options", "status", "code"),
    [
        (multipart(b"just some text"), 415, "unsupported_media_type"),
        (multipart(encoded(picture(), "TIFF")), 415, "unsupported_media_type"),
        (
            {"content": encoded(picture(), "PNG"), "headers": {"Content-Type": "image/png"}},
            415,
            "unsupported_media_type",
        ),
        (multipart(encoded(picture(300, 300), "PNG")[:400]), 422, "corrupt_image"),
        (multipart(png_header_only(100_000, 100_000)), 413, "image_too_large"),
        (multipart(encoded(picture(), "PNG"), name="photo"), 422, "invalid_input"),
        ({"json": {"picture": "abc"}}, 422, "invalid_input"),
        ({"json": {"image": "not base64!"}}, 422, "invalid_input"),
        ({"json": ["image"]}, 422, "invalid_input"),
        (
            {"content": b"{broken", "headers": {"Content-Type": "application/json"}},
            422,
            "invalid_input",
        ),
    ],
)
async def test_bad_images_and_bodies(
    request_options: dict[str, Any], status: int, code: str
) -> None:
    async with serving(**ONLY_DETECTOR) as (client, _):
        answer = await client.post("/detect", **request_options)
    assert answer.status_code == status
    assert answer.json()["error"] == code
    assert "Traceback" not in answer.text


@pytest.mark.parametrize(
    "query",
    [
        {"confidence": 1.5},
        {"confidence": "high"},
        {"iou": -0.1},
        {"max_detections": 0},
        {"format": "jpeg"},
    ],
)
async def test_out_of_range_parameters_are_422(query: dict[str, Any]) -> None:
    async with serving(**ONLY_DETECTOR) as (client, _):
        answer = await client.post("/detect", params=query, **multipart(encoded(scene(6), "PNG")))
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_request"


async def test_a_body_above_the_limit_is_413() -> None:
    async with serving(**ONLY_DETECTOR, max_body_bytes=2000) as (client, _):
        answer = await client.post("/detect", **multipart(encoded(scene(7, 300, 300), "BMP")))
    assert answer.status_code == 413 and answer.json()["error"] == "body_too_large"


async def test_64_concurrent_requests_equal_single_answers_in_order() -> None:
    images = [encoded(scene(seed, 200 + seed * 20, 150 + seed * 10), "PNG") for seed in range(8)]
    parameters = {"confidence": 0.05}
    async with serving(**ONLY_DETECTOR) as (client, _):
        singles = [
            (await client.post("/detect", params=parameters, **multipart(data))).json()
            for data in images
        ]
        answers = await asyncio.gather(
            *(
                client.post("/detect", params=parameters, **multipart(images[i % 8]))
                for i in range(64)
            )
        )
    for index, answer in enumerate(answers):
        expected = singles[index % 8]
        got = answer.json()
        assert got["image"] == expected["image"]
        assert [d["label"] for d in got["detections"]] == [
            d["label"] for d in expected["detections"]
        ]
        for mine, theirs in zip(got["detections"], expected["detections"], strict=True):
            assert mine["confidence"] == pytest.approx(theirs["confidence"], abs=1e-4)
            for side in ("x_min", "y_min", "x_max", "y_max"):
                assert mine["box"][side] == pytest.approx(theirs["box"][side], abs=0.05)
