"""`GET /vae/sample` and `POST /vae/decode`: images from the VAE's decoder."""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from app.errors import InvalidInput
from app.generation import (
    DecodedSamples,
    check_latents,
    latent_size,
    sample_latents,
    walk_latents,
    walk_range,
)
from app.registry import Servable
from app.routes.common import (
    FormatQuery,
    ModelRef,
    OutputFormat,
    RegistryDep,
    error_responses,
    model_ref,
    ok_example,
    png_response,
)
from app.tasks import Task

MODEL = "vae"
MAX_SAMPLES = 256
MAX_GRID = 16

router = APIRouter(tags=["vae"])
TASK = Task(name="vae", model=MODEL, router=router, scope="vae", locations=("/vae/",))


class Sample(BaseModel):
    latent: list[float]
    image: str = Field(description="The decoded image, a base64 PNG.")


class SamplesAnswer(BaseModel):
    model: ModelRef
    seed: int | None = Field(description="The seed the latents were drawn with (None for grids).")
    grid: int | None = None
    samples: list[Sample]


class DecodeRequest(BaseModel):
    latents: list[list[float]] = Field(min_length=1, max_length=MAX_SAMPLES)

    model_config = {"json_schema_extra": {"examples": [{"latents": [[0.0, 0.0], [1.5, -0.5]]}]}}


SAMPLES_EXAMPLE = {
    "model": {"name": "vae", "version": 1},
    "seed": 42,
    "grid": None,
    "samples": [{"latent": [0.304717, -1.039984], "image": "iVBORw0KGgoAAAANSUhEUgAAABwAAAAc..."}],
}


async def _decode(servable: Servable, latents: np.ndarray) -> DecodedSamples:
    return DecodedSamples(latents, await servable.infer(latents))


async def _answer(
    servable: Servable,
    samples: DecodedSamples,
    output: OutputFormat,
    seed: int | None = None,
    grid: int | None = None,
) -> Any:
    if output == "png":
        return png_response(await asyncio.to_thread(samples.as_png, grid), servable)
    encoded = await asyncio.to_thread(samples.as_json)
    return {"model": model_ref(servable), "seed": seed, "grid": grid, "samples": encoded}


@router.get(
    "/vae/sample",
    response_model=SamplesAnswer,
    responses={**ok_example(SAMPLES_EXAMPLE, "one tiled PNG"), **error_responses(404, 422, 503)},
    summary="Sample images from the VAE",
)
async def sample(
    registry: RegistryDep,
    n: Annotated[
        int, Query(ge=1, le=MAX_SAMPLES, description="How many samples.", examples=[16])
    ] = 1,
    seed: Annotated[
        int | None,
        Query(ge=0, le=2**63 - 1, description="Same seed, same images.", examples=[42]),
    ] = None,
    grid: Annotated[
        int | None,
        Query(
            ge=2,
            le=MAX_GRID,
            description="Instead of random samples: a K x K walk over the latent range.",
            examples=[10],
        ),
    ] = None,
    format: FormatQuery = "json",
) -> Any:
    """Draw `n` latent vectors from N(0, I) (seeded) and decode them, or decode a K x K grid
    over the latent range recorded in the model's metadata."""
    async with registry.acquire(MODEL) as servable:
        size = latent_size(servable.contract, servable.model.spec)
        if grid is not None:
            if size != 2:
                raise InvalidInput(f"A latent grid needs a 2-D latent space; this one has {size}.")
            latents, seed = walk_latents(grid, walk_range(servable.contract)), None
        else:
            seed = secrets.randbits(63) if seed is None else seed
            latents = sample_latents(n, seed, size)
        samples = await _decode(servable, latents)
        return await _answer(servable, samples, format, seed, grid)


@router.post(
    "/vae/decode",
    response_model=SamplesAnswer,
    responses={
        **ok_example({**SAMPLES_EXAMPLE, "seed": None}, "one tiled PNG"),
        **error_responses(404, 413, 422, 503),
    },
    summary="Decode explicit latent vectors",
)
async def decode(
    request: DecodeRequest,
    registry: RegistryDep,
    format: FormatQuery = "json",
) -> Any:
    """Decode the given latent vectors (each as long as the model's latent size)."""
    async with registry.acquire(MODEL) as servable:
        size = latent_size(servable.contract, servable.model.spec)
        latents = check_latents(request.latents, size)
        samples = await _decode(servable, latents)
        return await _answer(servable, samples, format)
