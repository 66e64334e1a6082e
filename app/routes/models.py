"""`/v1/models`: model status and metadata in the manner of TF Serving, and reloads."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel

from app.errors import VersionRefused
from app.routes.common import RegistryDep, error_responses, ok_example

router = APIRouter(prefix="/v1/models", tags=["models"])


class ReloadAnswer(BaseModel):
    name: str
    version: int | None
    previous_version: int | None
    changed: bool

    model_config = {
        "json_schema_extra": {
            "examples": [{"name": "vae", "version": 2, "previous_version": 1, "changed": True}]
        }
    }


MODEL_EXAMPLE = {
    "name": "vae",
    "state": "AVAILABLE",
    "version": 1,
    "pinned_version": None,
    "runtime": "onnxruntime",
    "versions": [
        {"version": 1, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ],
    "last_error": None,
    "batching": {
        "enabled": True,
        "max_batch_size": 32,
        "max_delay_ms": 2.0,
        "max_queue_size": 256,
        "queue_depth": 0,
    },
    "loaded_at": "2026-01-01T12:00:00+00:00",
    "task": "image-generation",
    "labels": None,
    "signature": {
        "name": "serving_default",
        "inputs": [{"name": "latent", "dtype": "float32", "shape": [None, 2]}],
        "outputs": [{"name": "image", "dtype": "float32", "shape": [None, 28, 28]}],
    },
    "metrics": {"test_loss": 150.2},
}
ModelName = Annotated[str, Path(description="A served model.", examples=["vae"])]


@router.get(
    "", summary="Every served model's status", responses=ok_example({"models": [MODEL_EXAMPLE]})
)
async def list_models(registry: RegistryDep) -> dict[str, Any]:
    """Versions, state, runtime, labels, input/output specification and metrics of each model."""
    descriptions = await asyncio.gather(
        *(asyncio.to_thread(registry.describe, name) for name in registry.names)
    )
    return {"models": list(descriptions)}


@router.get(
    "/{name}",
    summary="One model's status",
    responses={**ok_example(MODEL_EXAMPLE), **error_responses(404)},
)
async def describe_model(name: ModelName, registry: RegistryDep) -> dict[str, Any]:
    """Versions on disk and their state, the serving version, runtime, labels, signature and
    evaluation metrics from the version's metadata."""
    registry.current(name)  # 404 for an unknown model before touching the disk
    return await asyncio.to_thread(registry.describe, name)


@router.post(
    "/{name}/reload",
    response_model=ReloadAnswer,
    summary="Serve the newest (or pinned) version now",
    responses=error_responses(404, 409),
)
async def reload_model(name: ModelName, registry: RegistryDep) -> ReloadAnswer:
    """Load the target version if it is not served yet, verify and warm it up, then swap it in.
    Requests already running finish on the old version. A version that fails is refused (409)
    and the old version keeps serving."""
    outcome = await registry.reload(name, force=True)
    if outcome.error is not None and not outcome.changed:
        raise VersionRefused(
            f"Model '{name}' was not reloaded ({outcome.error}); "
            f"still serving version {outcome.version}."
        )
    return ReloadAnswer(
        name=name,
        version=outcome.version,
        previous_version=outcome.previous_version,
        changed=outcome.changed,
    )
