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

from modelkit.metadata import DetectionSettings

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


# --- reading detectors: a grid of word proposals, then a reader on each crop -----------------
#
# A reading detector's grid has one more class than its labels ("another word"). Its proposals
# are the slots whose objectness x best target probability reaches `proposal_threshold`, after
# class-agnostic NMS, at most `max_proposals`. Each proposal is cut from the original image
# (`reader_crop`: the box with a margin, widened or heightened to the reader's aspect ratio,
# grey where it leaves the image, in grey levels), and the reader returns one row per crop:
# probabilities over (labels..., another word), then the word's box inside the crop
# (x_min, y_min, x_max, y_max as fractions of the crop). A detection is the
# reader's best label, scored objectness ** `objectness_weight` x that label's probability, in
# the reader's box. The weight defaults to 1 (the product); below 1 the reader, which sees the
# word at full resolution, has more say than the grid's objectness, which under-rates large words.

READER_HEIGHT, READER_WIDTH = 32, 96


def reader_region(box: Sequence[float]) -> tuple[float, float, float, float]:
    """The crop around a word's box (x_min, y_min, x_max, y_max), READER_WIDTH/HEIGHT wide."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    aspect = READER_WIDTH / READER_HEIGHT
    height = max(1.6 * h + 2.0, (1.3 * w + 0.6 * h + 4.0) / aspect)
    width = height * aspect
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2


def reader_crop(gray: Image.Image, region: Sequence[float]) -> np.ndarray:
    """The region of a grey-level image as uint8 (READER_HEIGHT, READER_WIDTH), grey outside."""
    x0, y0, x1, y1 = (round(float(v)) for v in region)
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    inside = (max(x0, 0), max(y0, 0), min(x1, gray.width), min(y1, gray.height))
    canvas = Image.new("L", (x1 - x0, y1 - y0), PAD_COLOR[0])
    if inside[2] > inside[0] and inside[3] > inside[1]:
        canvas.paste(gray.crop(inside), (inside[0] - x0, inside[1] - y0))
    resized = canvas.resize((READER_WIDTH, READER_HEIGHT), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def propose(
    grid: np.ndarray,
    placement: Letterbox,
    input_size: int,
    num_labels: int,
    threshold: float,
    max_proposals: int,
) -> tuple[np.ndarray, np.ndarray]:
    """A reading detector's proposals: boxes (K, 4) in original pixels and their objectness."""
    boxes, _, _ = decode_grid(grid, input_size, 0.0)
    cells = np.asarray(grid, dtype=np.float32).reshape(-1, grid.shape[-1])
    objectness = cells[:, 0]
    scores = objectness * cells[:, BOX_FIELDS : BOX_FIELDS + num_labels].max(axis=-1)
    keep = scores >= threshold
    boxes, scores, objectness = boxes[keep], scores[keep], objectness[keep]
    agnostic = np.zeros(len(boxes), dtype=np.int64)
    kept = non_max_suppression(boxes, scores, agnostic, 0.5, max_proposals)
    original = placement.to_original(boxes[kept])
    valid = (original[:, 2] > original[:, 0]) & (original[:, 3] > original[:, 1])
    return original[valid], objectness[kept][valid]


def read_words(
    image: Image.Image,
    grid: np.ndarray,
    placement: Letterbox,
    settings: DetectionSettings,
    reader: GridModel,
    confidence: float,
    iou_threshold: float,
    max_detections: int | None = None,
) -> list[Detection]:
    """One image's detections from a reading detector's grid and its reader."""
    labels = settings.labels
    proposals, objectness = propose(
        grid,
        placement,
        settings.input_size,
        len(labels),
        settings.proposal_threshold,
        settings.max_proposals,
    )
    if not len(proposals):
        return []
    gray = image.convert("L")
    regions = np.array([reader_region(box) for box in proposals], dtype=np.float32)
    crops = np.stack([reader_crop(gray, region) for region in regions])
    read = reader.predict(crops[..., None].astype(np.float32) / 255.0)
    probabilities, relative = read[:, : len(labels) + 1], read[:, len(labels) + 1 :]
    class_ids = np.argmax(probabilities[:, : len(labels)], axis=-1)
    chosen = probabilities[np.arange(len(class_ids)), class_ids]
    scores = objectness**settings.objectness_weight * chosen
    size = np.concatenate([regions[:, 2:] - regions[:, :2]] * 2, axis=1)
    origin = np.concatenate([regions[:, :2]] * 2, axis=1)
    boxes = origin + np.clip(relative, 0.0, 1.0) * size
    limits = np.array([image.width, image.height] * 2, dtype=np.float32)
    boxes = np.clip(boxes, 0.0, limits)
    keep = scores >= confidence
    boxes, scores, class_ids = boxes[keep], scores[keep], class_ids[keep]
    kept = non_max_suppression(boxes, scores, class_ids, iou_threshold, max_detections)
    return [
        Detection(
            label=labels[int(class_ids[i])],
            class_id=int(class_ids[i]),
            confidence=float(scores[i]),
            box=tuple(round(float(v), 2) for v in boxes[i]),
        )
        for i in kept
        if boxes[i][2] > boxes[i][0] and boxes[i][3] > boxes[i][1]
    ]


class GridModel(Protocol):
    """What `detect` needs: a LoadedModel from modelkit.repository fits."""

    metadata: dict[str, Any]

    def predict(self, inputs: np.ndarray) -> np.ndarray: ...


def detection_settings(model: GridModel) -> DetectionSettings:
    """A detector's typed settings: a LoadedModel's contract, read at load; else (a model
    being trained or tuned) parsed from its metadata's `detection` block."""
    contract = getattr(model, "contract", None)
    if contract is not None and contract.detection is not None:
        return contract.detection
    return DetectionSettings.from_json(model.metadata["detection"])


def detect(
    images: Sequence[Image.Image],
    model: GridModel,
    confidence: float | None = None,
    iou: float | None = None,
    max_detections: int | None = 100,
    reader: GridModel | None = None,
) -> list[list[Detection]]:
    """Run a detector on PIL images; thresholds default to those in the model's metadata.

    A reading detector (metadata `detection.reader`) needs its `reader`: the same version's
    signature of that name.
    """
    if not images:
        return []
    settings = detection_settings(model)
    size = settings.input_size
    confidence = settings.confidence_threshold if confidence is None else confidence
    iou = settings.nms_iou_threshold if iou is None else iou
    batch, placements = to_model_input(images, size)
    grids = model.predict(batch)
    if settings.reader:
        if reader is None:
            raise ValueError("this detector reads: pass its reader signature as `reader`")
        return [
            read_words(image, grid, placement, settings, reader, confidence, iou, max_detections)
            for image, grid, placement in zip(images, grids, placements, strict=True)
        ]
    return [
        postprocess(grid, placement, size, settings.labels, confidence, iou, max_detections)
        for grid, placement in zip(grids, placements, strict=True)
    ]
