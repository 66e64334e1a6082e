"""`POST /detect`: boxes and labels of the objects the detector finds in an image."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from app.detection import (
    DetectionParameters,
    decode_detections,
    detection_json,
    draw_detections,
    load_reader,
    prepare_image,
    read_image_bytes,
)
from app.routes.common import (
    FormatQuery,
    ModelRef,
    RegistryDep,
    SettingsDep,
    error_responses,
    model_ref,
    ok_example,
    png_response,
)
from app.tasks import Task

MODEL = "detector"

router = APIRouter(tags=["detector"])
TASK = Task(
    name="detect",
    model=MODEL,
    router=router,
    scope="detect",
    locations=("= /detect",),
    companion=load_reader,  # a reading detector's reader signature
)


class Box(BaseModel):
    x_min: float
    y_min: float
    x_max: float
    y_max: float


class DetectionItem(BaseModel):
    label: str
    confidence: float
    box: Box


class ImageSize(BaseModel):
    width: int
    height: int


class DetectAnswer(BaseModel):
    model: ModelRef
    image: ImageSize
    detections: list[DetectionItem]


DETECT_EXAMPLE = {
    "model": {"name": "detector", "version": 1},
    "image": {"width": 640, "height": 480},
    "detections": [
        {
            "label": "chat",
            "confidence": 0.91,
            "box": {"x_min": 12.0, "y_min": 40.5, "x_max": 220.0, "y_max": 96.0},
        }
    ],
}


ONE_PIXEL_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4//8/AAX+Av4N70a4AAAAAElFTkSuQmCC"
)
REQUEST_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {"image": {"type": "string", "format": "binary"}},
                "required": ["image"],
            }
        },
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"image": {"type": "string", "description": "base64 image"}},
                "required": ["image"],
            },
            "example": {"image": ONE_PIXEL_PNG},
        },
    },
}


@router.post(
    "/detect",
    response_model=DetectAnswer,
    summary="Detect objects in an image",
    openapi_extra={"requestBody": REQUEST_BODY},
    responses={
        **ok_example(DETECT_EXAMPLE, "the image with boxes and labels drawn"),
        **error_responses(404, 413, 415, 422, 503),
    },
)
async def detect(
    request: Request,
    registry: RegistryDep,
    settings: SettingsDep,
    confidence: Annotated[
        float | None,
        Query(ge=0, le=1, description="Score threshold; model default if absent.", examples=[0.3]),
    ] = None,
    iou: Annotated[
        float | None,
        Query(
            ge=0, le=1, description="NMS IoU threshold; model default if absent.", examples=[0.5]
        ),
    ] = None,
    max_detections: Annotated[int, Query(ge=1, le=1000, examples=[20])] = 100,
    format: FormatQuery = "json",
) -> Any:
    """PNG, JPEG, WebP, GIF (first frame) or BMP; EXIF orientation applied; boxes in the
    original image's pixels."""
    data = await read_image_bytes(request)
    async with registry.acquire(MODEL) as servable:
        defaults = servable.contract.detection
        assert defaults is not None  # the detector's metadata has its detection block
        parameters = DetectionParameters(
            confidence=defaults.confidence_threshold if confidence is None else confidence,
            iou=defaults.nms_iou_threshold if iou is None else iou,
            max_detections=max_detections,
        )
        prepared = await asyncio.to_thread(
            prepare_image, data, settings.max_image_pixels, defaults.input_size
        )
        (grid,) = await servable.infer(prepared.rows)
        detections = await asyncio.to_thread(
            decode_detections, grid, prepared, defaults, parameters, servable.companion
        )
        if format == "png":
            return png_response(
                await asyncio.to_thread(draw_detections, prepared.image, detections), servable
            )
        width, height = prepared.image.size
        return {
            "model": model_ref(servable),
            "image": {"width": width, "height": height},
            "detections": [detection_json(d) for d in detections],
        }
