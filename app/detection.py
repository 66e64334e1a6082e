"""The detector's request handling around `modelkit.detection`: payload, letterbox, drawing."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request

from app.errors import InvalidInput, UnsupportedMediaType
from app.images import decode_image, encode_png
from modelkit.detection import Detection, Letterbox, postprocess, read_words, to_model_input
from modelkit.metadata import DetectionSettings
from modelkit.repository import LoadedModel, load_model

IMAGE_FIELD = "image"
_PALETTE = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180))


async def read_image_bytes(request: Request) -> bytes:
    """The image from a multipart field `image` or from JSON `{"image": "<base64>"}`."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        try:
            form = await request.form(max_files=1, max_fields=8)
        except ClientDisconnect:
            raise
        except HTTPException as exc:
            raise InvalidInput(f"The multipart body cannot be parsed: {exc.detail}.") from None
        upload = form.get(IMAGE_FIELD)
        if not isinstance(upload, UploadFile):
            raise InvalidInput(f"The multipart body has no file field '{IMAGE_FIELD}'.")
        return await upload.read()
    if content_type == "application/json":
        try:
            payload = await request.json()
        except ValueError:
            raise InvalidInput("The body is not valid JSON.") from None
        encoded = payload.get(IMAGE_FIELD) if isinstance(payload, dict) else None
        if not isinstance(encoded, str):
            raise InvalidInput(f"The JSON body needs a string field '{IMAGE_FIELD}' (base64).")
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput(f"Field '{IMAGE_FIELD}' is not valid base64.") from None
    raise UnsupportedMediaType(
        f"Send the image as multipart/form-data field '{IMAGE_FIELD}' or as JSON "
        f'{{"{IMAGE_FIELD}": "<base64>"}}, not {content_type or "a body without a content type"}.'
    )


@dataclass
class PreparedImage:
    image: Image.Image
    rows: np.ndarray  # (1, size, size, 3), the letterboxed model input
    placement: Letterbox


def prepare_image(data: bytes, max_pixels: int, input_size: int) -> PreparedImage:
    image = decode_image(data, max_pixels)
    rows, (placement,) = to_model_input([image], input_size)
    return PreparedImage(image, rows, placement)


@dataclass(frozen=True)
class DetectionParameters:
    confidence: float
    iou: float
    max_detections: int


def load_reader(model: LoadedModel) -> LoadedModel | None:
    """A reading detector's reader (the same version's `reader` signature), else None.

    One intra-op thread: it runs on at most `max_proposals` small crops per image, in the
    request's worker thread, and leaves the cores to the batched grid.
    """
    detection = model.contract.detection
    if detection is None or not detection.reader:
        return None
    return load_model(
        model.path.parent.parent,
        model.name,
        model.version,
        runtime=model.runtime_name,
        signature=detection.reader,
        threads=1,
    )


def decode_detections(
    grid: np.ndarray,
    prepared: PreparedImage,
    settings: DetectionSettings,
    parameters: DetectionParameters,
    reader: LoadedModel | None = None,
) -> list[Detection]:
    if reader is not None:
        return read_words(
            prepared.image,
            grid,
            prepared.placement,
            settings,
            reader,
            parameters.confidence,
            parameters.iou,
            parameters.max_detections,
        )
    return postprocess(
        grid,
        prepared.placement,
        settings.input_size,
        settings.labels,
        parameters.confidence,
        parameters.iou,
        parameters.max_detections,
    )


def detection_json(detection: Detection) -> dict[str, Any]:
    x_min, y_min, x_max, y_max = detection.box
    return {
        "label": detection.label,
        "confidence": round(detection.confidence, 6),
        "box": {"x_min": x_min, "y_min": y_min, "x_max": x_max, "y_max": y_max},
    }


def draw_detections(image: Image.Image, detections: list[Detection]) -> bytes:
    """The image as PNG with each box outlined and labelled with its class and confidence."""
    canvas = image.copy()
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    line = max(2, round(min(canvas.size) / 200))
    for detection in detections:
        color = _PALETTE[detection.class_id % len(_PALETTE)]
        draw.rectangle(detection.box, outline=color, width=line)
        caption = f"{detection.label} {detection.confidence:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        x, y = detection.box[0], max(0.0, detection.box[1] - (bottom - top) - 4)
        draw.rectangle((x, y, x + right - left + 4, y + bottom - top + 4), fill=color)
        draw.text((x + 2, y + 2 - top), caption, fill=(255, 255, 255), font=font)
    return encode_png(canvas)
