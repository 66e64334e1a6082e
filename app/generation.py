"""The VAE's sampling logic: latent vectors from a seed or a grid, decoded images as PNG."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import InvalidInput
from app.images import encode_gray_png, tile, to_gray8
from modelkit.metadata import ModelMetadata, Signature

DEFAULT_WALK_RANGE = (-3.0, 3.0)


def latent_size(contract: ModelMetadata, signature: Signature) -> int:
    """The latent space's size: the metadata's, else the decoder's input width."""
    if contract.latent is not None:
        return contract.latent.size
    return int(signature.input.shape[-1] or 0)


def walk_range(contract: ModelMetadata) -> tuple[float, float]:
    return contract.latent.walk_range if contract.latent is not None else DEFAULT_WALK_RANGE


def sample_latents(count: int, seed: int, size: int) -> np.ndarray:
    """`count` draws from the prior N(0, I); the same seed gives the same vectors."""
    return np.random.default_rng(seed).standard_normal((count, size)).astype(np.float32)


def walk_latents(steps: int, value_range: tuple[float, float]) -> np.ndarray:
    """A `steps` x `steps` grid over a 2-D latent space, row by row as it is drawn.

    Columns go from low to high along the first latent axis; rows from high (top) to low
    along the second, so the tiled picture has the usual orientation of a 2-D plot.
    """
    low, high = value_range
    axis = np.linspace(low, high, steps, dtype=np.float32)
    second, first = np.meshgrid(axis[::-1], axis, indexing="ij")
    return np.stack([first.ravel(), second.ravel()], axis=-1)


def check_latents(latents: list[list[float]], size: int) -> np.ndarray:
    if any(len(latent) != size for latent in latents):
        raise InvalidInput(f"Each latent vector must have exactly {size} numbers.")
    array = np.asarray(latents, dtype=np.float32).reshape(len(latents), size)
    if not np.all(np.isfinite(array)):
        raise InvalidInput("Latent vectors must hold finite numbers.")
    return array


@dataclass
class DecodedSamples:
    latents: np.ndarray
    images: np.ndarray  # the decoder's output, (n, H, W) or (n, H, W, 1), in [0, 1]

    def as_json(self) -> list[dict[str, Any]]:
        images = to_gray8(self.images)  # all at once: one numpy pass, not one per image
        return [
            {
                "latent": [round(float(v), 6) for v in latent],
                "image": base64.b64encode(encode_gray_png(pixels)).decode(),
            }
            for latent, pixels in zip(self.latents.tolist(), images, strict=True)
        ]

    def as_png(self, columns: int | None = None) -> bytes:
        images = to_gray8(self.images)
        columns = columns or math.ceil(math.sqrt(len(images)))
        return encode_gray_png(tile(images, columns))
