"""The app's HTTP surface: its routers and its OpenAPI title, version and description.

`create_app` mounts these routers; the gateway's OpenAPI document (gateway/openapi.py) is made
from the same ones, without building an app or loading a model.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from app.routes import health, models, v2
from app.tasks import Task

TITLE = "Inference service"
VERSION = "0.1.0"
DESCRIPTION = """
Serves the versioned models of `models/` through ONNX Runtime (or TensorFlow, per model):
object detection, VAE sampling and news classification, with dynamic micro-batching; and
every model through the Open Inference Protocol (`/v2`, KServe v2 with Triton's binary data).
It sits behind the gateway, which authenticates every call; errors are
`{"error": "<code>", "detail": "<sentence>"}`.
"""


def routers(tasks: Sequence[Task]) -> tuple[APIRouter, ...]:
    """Every router of the app: the tasks' (by name), model metadata, /v2, health."""
    return (*(task.router for task in tasks), models.router, v2.router, health.router)
