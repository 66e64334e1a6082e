"""The `hard` layout under one perturbation: how the evaluation tests robustness.

- `rotate`: the whole image turned by an angle uniform in ±15 degrees about its centre, on a
  canvas that holds all of it (corners filled with the border's median colour); each box is
  the extent of its word's rotated ink.
- `blur`: Gaussian blur of radius 1.5. `jpeg`: JPEG at quality 30. `scale`: half the size.
- `aug` (training only): each of the four at random strengths, each with probability 0.35,
  so no evaluation setting is seen as such.

The words and boxes are those of `hard_sample` for the same generator state.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from training.detector.dataset import Sample, hard_sample
from training.detector.real import homography, jpeg, transform_points, warp

PERTURBATIONS = ("rotate", "blur", "jpeg", "scale", "aug")
MAX_ANGLE = 15.0


def rotate(sample: Sample, ink: list[np.ndarray], angle: float) -> Sample:
    image = sample.image
    border = np.concatenate(
        [np.asarray(image)[[0, -1]].reshape(-1, 3), np.asarray(image)[:, [0, -1]].reshape(-1, 3)]
    )
    fill = tuple(int(v) for v in np.median(border, axis=0))
    matrix = homography(np.random.default_rng(0), image.width, image.height, angle, False)
    turned, offset = warp(image, matrix, fill=fill)
    boxes = []
    for points in ink:
        moved = transform_points(matrix, points) - offset.astype(np.float32)
        x0, y0 = np.floor(moved.min(axis=0))
        x1, y1 = np.floor(moved.max(axis=0)) + 1
        boxes.append((x0, y0, x1, y1))
    return Sample(turned, np.asarray(boxes, np.float32).reshape(-1, 4), sample.classes)


def scale(sample: Sample, factor: float) -> Sample:
    image = sample.image
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    ratio = np.array([size[0] / image.width, size[1] / image.height] * 2, np.float32)
    return Sample(
        image.resize(size, Image.Resampling.BILINEAR), sample.boxes * ratio, sample.classes
    )


def with_image(sample: Sample, image: Image.Image) -> Sample:
    return Sample(image, sample.boxes, sample.classes)


def perturbed_hard(kind: str, rng: np.random.Generator) -> Sample:
    ink: list[np.ndarray] = []
    sample = hard_sample(rng, ink=ink)
    if kind == "rotate":
        return rotate(sample, ink, float(rng.uniform(-MAX_ANGLE, MAX_ANGLE)))
    if kind == "blur":
        return with_image(sample, sample.image.filter(ImageFilter.GaussianBlur(1.5)))
    if kind == "jpeg":
        return with_image(sample, jpeg(sample.image, 30))
    if kind == "scale":
        return scale(sample, 0.5)
    if kind != "aug":
        raise ValueError(f"unknown perturbation {kind!r}; choose from {', '.join(PERTURBATIONS)}")
    if rng.random() < 0.35:
        sample = rotate(sample, ink, float(rng.uniform(-MAX_ANGLE - 3, MAX_ANGLE + 3)))
    if rng.random() < 0.35:
        sample = with_image(
            sample, sample.image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.2)))
        )
    if rng.random() < 0.35:
        sample = with_image(sample, jpeg(sample.image, int(rng.integers(15, 70))))
    if rng.random() < 0.35:
        sample = scale(sample, float(rng.uniform(0.4, 0.9)))
    return sample
