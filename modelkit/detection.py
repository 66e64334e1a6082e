"""Object-detection post-processing shared by evaluation and serving (numpy + Pillow only).

    detections = detect(images, model)            # list[list[Detection]], one list per image

A detector takes a square `size x size` float32 image in [0, 1]: the original is scaled to fit
(aspect ratio kept), centred and padded with `PAD_COLOR` ("letterbox"). It returns a raw grid
of shape (S, S, B, 5 + C): for each of the S x S cells and B box slots
`[objectness, x, y, w, h, p(class_0), ..., p(class_C-1)]`, all in [0, 1], where (x, y) is the
box centre relative to the cell and (w, h) the box size relative to the model input.
Decoding turns the grid into boxes in the letterboxed input, keeps those whose score
(objectness x best class probability) reaches the confidence threshold, suppresses overlapping
boxes of the same class, and maps the survivors back to original pixels, clipped to the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image

PAD_COLOR = (114, 114, 114)
BOX_FIELDS = 5  # objectness, x, y, w, h


@dataclass(frozen=True)
class Detection:
    label: str
    class_id: int
    confidence: float
    box: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max in original pixels

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Letterbox:
    """How an original image was placed in the model input: input = original * scale + pad."""

    scale: float
    pad_x: int
    pad_y: int
    width: int  # of the original image
    height: int

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes (N, 4) in model-input pixels -> original pixels, clipped to the image."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        offset = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], dtype=np.float32)
        original = (boxes - offset) / self.scale
        limits = np.array([self.width, self.height, self.width, self.height], dtype=np.float32)
        return np.clip(original, 0.0, limits)

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes (N, 4) in original pixels -> model-input pixels."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        offset = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], dtype=np.float32)
        return boxes * self.scale + offset


def letterbox_image(
    image: Image.Image, size: int, pad_color: tuple[int, int, int] = PAD_COLOR
) -> tuple[Image.Image, Letterbox]:
    """Scale `image` to fit a `size` x `size` square (bilinear), centred on `pad_color`."""
    image = image.convert("RGB")
    width, height = image.size
    scale = min(size / width, size / height)
    new_width = max(1, min(size, round(width * scale)))
    new_height = max(1, min(size, round(height * scale)))
    pad_x, pad_y = (size - new_width) // 2, (size - new_height) // 2
    canvas = Image.new("RGB", (size, size), pad_color)
    canvas.paste(image.resize((new_width, new_height), Image.Resampling.BILINEAR), (pad_x, pad_y))
    # The exact per-axis scale after rounding; the two differ by under one pixel over the image.
    return canvas, Letterbox(scale, pad_x, pad_y, width, height)


def to_model_input(images: Sequence[Image.Image], size: int) -> tuple[np.ndarray, list[Letterbox]]:
    """A float32 batch (N, size, size, 3) in [0, 1] and each image's letterbox."""
    batch = np.empty((len(images), size, size, 3), dtype=np.float32)
    boxes = []
    for index, image in enumerate(images):
        canvas, placement = letterbox_image(image, size)
        batch[index] = np.asarray(canvas, dtype=np.float32) / 255.0
        boxes.append(placement)
    return batch, boxes


def box_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes (N, 4) and (M, 4) in (x_min, y_min, x_max, y_max): shape (N, M)."""
    first = np.asarray(first, dtype=np.float32).reshape(-1, 4)
    second = np.asarray(second, dtype=np.float32).reshape(-1, 4)
    top_left = np.maximum(first[:, None, :2], second[None, :, :2])
    bottom_right = np.minimum(first[:, None, 2:], second[None, :, 2:])
    intersection = np.prod(np.clip(bottom_right - top_left, 0.0, None), axis=-1)
    area_first = np.prod(np.clip(first[:, 2:] - first[:, :2], 0.0, None), axis=-1)
    area_second = np.prod(np.clip(second[:, 2:] - second[:, :2], 0.0, None), axis=-1)
    union = area_first[:, None] + area_second[None, :] - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1e-12), 0.0)


def decode_grid(
    grid: np.ndarray, input_size: int, confidence: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's raw grid (S, S, B, 5 + C) -> boxes (N, 4) in input pixels, scores, class ids.

    Each box slot gives one candidate: its best class, scored objectness x class probability.
    Candidates below `confidence` are dropped.
    """
    grid = np.asarray(grid, dtype=np.float32)
    rows, cols = grid.shape[:2]
    row_index, col_index = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    centre_x = (col_index[..., None] + grid[..., 1]) / cols * input_size
    centre_y = (row_index[..., None] + grid[..., 2]) / rows * input_size
    half_width = grid[..., 3] * input_size / 2
    half_height = grid[..., 4] * input_size / 2
    boxes = np.stack(
        [
            centre_x - half_width,
            centre_y - half_height,
            centre_x + half_width,
            centre_y + half_height,
        ],
        axis=-1,
    ).reshape(-1, 4)
    class_probabilities = grid[..., BOX_FIELDS:].reshape(-1, grid.shape[-1] - BOX_FIELDS)
    class_ids = np.argmax(class_probabilities, axis=-1)
    scores = grid[..., 0].reshape(-1) * class_probabilities[np.arange(len(class_ids)), class_ids]
    keep = scores >= confidence
    return boxes[keep], scores[keep], class_ids[keep]


def non_max_suppression(
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    iou_threshold: float,
    max_detections: int | None = None,
) -> np.ndarray:
    """Indices of the boxes kept, best score first; boxes of different classes never suppress."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    boxes = np.asarray(boxes, dtype=np.float32)[order]
    class_ids = np.asarray(class_ids)[order]
    overlaps = box_iou(boxes, boxes)
    suppressed = np.zeros(len(order), dtype=bool)
    kept: list[int] = []
    for position in range(len(order)):
        if suppressed[position]:
            continue
        kept.append(position)
        if max_detections is not None and len(kept) == max_detections:
            break
        same_class = class_ids == class_ids[position]
        suppressed |= same_class & (overlaps[position] > iou_threshold)
    return order[np.array(kept, dtype=np.int64)]


def postprocess(
    grid: np.ndarray,
    placement: Letterbox,
    input_size: int,
    labels: Sequence[str],
    confidence: float,
    iou_threshold: float,
    max_detections: int | None = None,
) -> list[Detection]:
    """One image's raw grid -> its detections in original pixels, best first."""
    boxes, scores, class_ids = decode_grid(grid, input_size, confidence)
    kept = non_max_suppression(boxes, scores, class_ids, iou_threshold, max_detections)
    original = placement.to_original(boxes[kept])
    detections = []
    for box, score, class_id in zip(original, scores[kept], class_ids[kept], strict=True):
        if box[2] <= box[0] or box[3] <= box[1]:
            continue  # entirely in the padding
        detections.append(
            Detection(
                label=labels[int(class_id)],
                class_id=int(class_id),
                confidence=float(score),
                box=tuple(round(float(v), 2) for v in box),
            )
        )
    return detections


class GridModel(Protocol):
    """What `detect` needs: a LoadedModel from modelkit.repository fits."""

    metadata: dict[str, Any]

    def predict(self, inputs: np.ndarray) -> np.ndarray: ...


def detect(
    images: Sequence[Image.Image],
    model: GridModel,
    confidence: float | None = None,
    iou: float | None = None,
    max_detections: int | None = 100,
) -> list[list[Detection]]:
    """Run a detector on PIL images; thresholds default to those in the model's metadata."""
    if not images:
        return []
    settings = model.metadata["detection"]
    size = int(settings["input_size"])
    confidence = settings["confidence_threshold"] if confidence is None else confidence
    iou = settings["nms_iou_threshold"] if iou is None else iou
    batch, placements = to_model_input(images, size)
    grids = model.predict(batch)
    return [
        postprocess(grid, placement, size, settings["labels"], confidence, iou, max_detections)
        for grid, placement in zip(grids, placements, strict=True)
    ]
