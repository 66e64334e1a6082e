"""Letterboxed training arrays: generated images, fitted to the model input, cached.

Images are generated once per (purpose, layout, seed, count, input size), letterboxed to the
model input as uint8 and cached as .npz under a temporary directory, never in the repository.
Boxes stay boxes (in model-input pixels): each model encodes its own target grid per batch.
This module does not import TensorFlow, so the generator's worker processes start quickly.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelkit.detection import letterbox_image
from training.detector.dataset import Sample, generate_one

DEFAULT_CACHE_DIR = Path(tempfile.gettempdir()) / "detector-cache"
GENERATOR_VERSION = 2  # bump when the generator changes, so stale caches are not reused


@dataclass
class Letterboxed:
    images: np.ndarray  # (N, size, size, 3) uint8
    boxes: list[np.ndarray]  # per image (K, 4) float32, model-input pixels
    classes: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.images)

    def concatenate(self, *others: Letterboxed) -> Letterboxed:
        """One copy of all the images (a chain of pairs would hold every intermediate too)."""
        parts = (self, *others)
        return Letterboxed(
            np.concatenate([part.images for part in parts]),
            [boxes for part in parts for boxes in part.boxes],
            [classes for part in parts for classes in part.classes],
        )


def letterbox_sample(sample: Sample, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    canvas, placement = letterbox_image(sample.image, size)
    return np.asarray(canvas), placement.to_input(sample.boxes), sample.classes


def _stack(parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], size: int) -> Letterboxed:
    return Letterboxed(
        np.stack([p[0] for p in parts]).reshape(-1, size, size, 3),
        [p[1] for p in parts],
        [p[2] for p in parts],
    )


def from_samples(samples: Sequence[Sample], size: int) -> Letterboxed:
    return _stack([letterbox_sample(sample, size) for sample in samples], size)


def _make(job: tuple[str, int, int, str, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    layout, seed, index, purpose, size = job
    return letterbox_sample(generate_one(layout, seed, index, purpose), size)


def _to_arrays(data: Letterboxed) -> dict[str, np.ndarray]:
    return {
        "images": data.images,
        "boxes": np.concatenate(data.boxes).reshape(-1, 4),
        "classes": np.concatenate(data.classes),
        "counts": np.array([len(b) for b in data.boxes]),
    }


def _from_arrays(stored) -> Letterboxed:
    split = np.cumsum(stored["counts"])[:-1]
    return Letterboxed(
        stored["images"], np.split(stored["boxes"], split), np.split(stored["classes"], split)
    )


def _build_cached(
    cache: Path | None,
    make: Callable,
    jobs: list,
    processes: int | None,
    pool_from: int,
    assemble: Callable[[list], dict[str, np.ndarray]],
) -> dict[str, np.ndarray]:
    """The arrays stored in `cache`, or made from `jobs` (in worker processes) and stored."""
    if cache is not None and cache.exists():
        with np.load(cache) as stored:
            return {key: stored[key] for key in stored.files}
    processes = processes or os.cpu_count() or 1
    if processes > 1 and len(jobs) >= pool_from:
        with multiprocessing.get_context("spawn").Pool(processes) as pool:
            parts = pool.map(make, jobs, chunksize=max(1, pool_from // 4))
    else:
        parts = [make(job) for job in jobs]
    arrays = assemble(parts)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(".partial.npz")
        np.savez(partial, **arrays)
        partial.rename(cache)
    return arrays


def _cache_path(cache_dir: Path | None, name: str) -> Path | None:
    return None if cache_dir is None else cache_dir / name


def generated(
    layout: str,
    count: int,
    seed: int,
    purpose: str,
    size: int,
    cache_dir: Path | None = DEFAULT_CACHE_DIR,
    processes: int | None = None,
) -> Letterboxed:
    """`count` generated images of one layout, letterboxed to `size` (cached when asked)."""
    name = f"v{GENERATOR_VERSION}-{purpose}-{layout}-seed{seed}-n{count}-{size}px.npz"
    jobs = [(layout, seed, index, purpose, size) for index in range(count)]
    arrays = _build_cached(
        _cache_path(cache_dir, name),
        _make,
        jobs,
        processes,
        256,
        lambda parts: _to_arrays(_stack(parts, size)),
    )
    return _from_arrays(arrays)


# --- the reading detector's data: letterboxed scenes with every word, and reader crops --------


@dataclass
class ReadingData:
    scenes: Letterboxed  # classes 0..C-1 targets, C = another word
    crops: np.ndarray  # (M, 32, 96) uint8 grey
    crop_targets: np.ndarray  # (M, crops.TARGET_FIELDS) float32

    def concatenate(self, *others: ReadingData) -> ReadingData:
        parts = (self, *others)
        return ReadingData(
            self.scenes.concatenate(*(part.scenes for part in others)),
            np.concatenate([part.crops for part in parts]),
            np.concatenate([part.crop_targets for part in parts]),
        )


def _make_reading(job: tuple[str, int, int, str, int]):
    from training.detector.crops import training_crops
    from training.detector.real import OTHER

    layout, seed, index, purpose, size = job
    sample = generate_one(layout, seed, index, purpose)
    canvas, placement = letterbox_image(sample.image, size)
    boxes = np.concatenate([placement.to_input(sample.boxes), placement.to_input(sample.others)])
    classes = np.concatenate([sample.classes, np.full(len(sample.others), OTHER, np.int64)])
    rng = np.random.default_rng([PURPOSES_CROPS, seed, index, len(layout)])
    crops, targets = training_crops(sample, rng)
    return np.asarray(canvas), boxes, classes, crops, targets


PURPOSES_CROPS = 17  # keeps the crops' jitter apart from the scenes' generators


def generated_reading(
    layout: str,
    count: int,
    seed: int,
    purpose: str,
    size: int,
    cache_dir: Path | None = DEFAULT_CACHE_DIR,
    processes: int | None = None,
) -> ReadingData:
    """`count` scenes of one layout for the reading detector (cached when asked)."""

    def assemble(parts: list) -> dict[str, np.ndarray]:
        return {
            **_to_arrays(_stack([p[:3] for p in parts], size)),
            "crops": np.concatenate([p[3] for p in parts]),
            "crop_targets": np.concatenate([p[4] for p in parts]),
        }

    name = f"v{GENERATOR_VERSION}-reading-{purpose}-{layout}-seed{seed}-n{count}-{size}px.npz"
    jobs = [(layout, seed, index, purpose, size) for index in range(count)]
    arrays = _build_cached(
        _cache_path(cache_dir, name), _make_reading, jobs, processes, 64, assemble
    )
    return ReadingData(_from_arrays(arrays), arrays["crops"], arrays["crop_targets"])


def mined_reading(
    layout: str,
    count: int,
    seed: int,
    purpose: str,
    models_dir: Path,
    version: int,
    cache_dir: Path | None = DEFAULT_CACHE_DIR,
    processes: int | None = None,
    rank: str = "grid",
) -> tuple[np.ndarray, np.ndarray]:
    """Reader crops and targets at a published grid's proposals on `count` fresh scenes of one
    layout (`training.detector.mining`), its negatives ranked by `rank`, cached when asked."""
    from training.detector.mining import make_mined, mining_jobs

    def assemble(parts: list) -> dict[str, np.ndarray]:
        return {
            "crops": np.concatenate([p[0] for p in parts]),
            "crop_targets": np.concatenate([p[1] for p in parts]),
        }

    source = f"d{version}" if rank == "grid" else f"d{version}-by-{rank}"
    name = f"v{GENERATOR_VERSION}-mined-{source}-{purpose}-{layout}-seed{seed}-n{count}.npz"
    jobs = mining_jobs(layout, count, seed, purpose, models_dir, version, rank)
    arrays = _build_cached(_cache_path(cache_dir, name), make_mined, jobs, processes, 64, assemble)
    return arrays["crops"], arrays["crop_targets"]
