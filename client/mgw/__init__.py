"""Python client and command-line tool (``mgw``) for the model gateway.

    from mgw import Gateway

    with Gateway("http://localhost:8080", "demo", secret) as gw:
        gw.classify("The striker scored twice.").label      # 'sport'
        gw.detect("photo.jpg")                              # [Detection(label='chat', ...)]
        gw.walk(10).tile().save("walk.png")

Every refusal is a ``GatewayError`` carrying the gateway's ``status``, ``error`` and
``detail``. docs/client.md is the reference.
"""

from mgw._client import DEFAULT_TIMEOUT, Gateway, ImageInput
from mgw._errors import GatewayError
from mgw._images import draw_detections
from mgw._types import (
    Box,
    Category,
    Detection,
    InferResult,
    ModelInfo,
    Prediction,
    Samples,
    Tensor,
    Token,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "Box",
    "Category",
    "Detection",
    "Gateway",
    "GatewayError",
    "ImageInput",
    "InferResult",
    "ModelInfo",
    "Prediction",
    "Samples",
    "Tensor",
    "Token",
    "draw_detections",
]
