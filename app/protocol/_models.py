"""What each kind of model looks like through the protocol: its tensors and how it runs.

A model is served as its signature (any model in the repository, imported ones included): the
signature's input and outputs, rows straight into the batcher. Two kinds run the same
pre- and post-processing as their task routes, so that a client needs nothing but the
protocol: a text classifier takes raw text as BYTES (the version's stored vectorizer runs
here), and a detector takes an RGB image tensor and answers boxes, scores and classes (padded
to the most detections of any image in the request, with `num_detections` saying how many of
each row are real), as TensorFlow's object-detection models do.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
from PIL import Image

from app.classification import check_texts, vectorize
from app.detection import DetectionParameters, PreparedImage, decode_detections
from app.errors import BadInferenceRequest
from app.protocol._tensors import datatype_of
from app.registry import Servable
from app.settings import Settings
from modelkit import metadata as modelkit_metadata
from modelkit.detection import Detection, to_model_input
from modelkit.metadata import DetectionSettings

PLATFORMS = {"onnxruntime": "onnxruntime_onnx", "tensorflow": "tensorflow_keras"}


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1: any size

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def _spec(tensor: modelkit_metadata.TensorSpec) -> TensorSpec:
    shape = tuple(-1 if d is None else d for d in tensor.shape)
    return TensorSpec(tensor.name, datatype_of(tensor.dtype), shape)


class ProtocolModel(Protocol):
    kind: ClassVar[str]

    def inputs(self, servable: Servable) -> list[TensorSpec]: ...

    def outputs(self, servable: Servable) -> list[TensorSpec]: ...

    async def infer(
        self, servable: Servable, inputs: dict[str, np.ndarray], parameters: dict[str, Any]
    ) -> dict[str, np.ndarray]: ...


class SignatureModel:
    """The served signature as it is: its input's rows are rows of the batch."""

    kind: ClassVar[str] = "signature"

    def inputs(self, servable: Servable) -> list[TensorSpec]:
        return [_spec(tensor) for tensor in servable.model.spec.inputs]

    def outputs(self, servable: Servable) -> list[TensorSpec]:
        return [_spec(tensor) for tensor in servable.model.spec.outputs]

    async def infer(
        self, servable: Servable, inputs: dict[str, np.ndarray], parameters: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        (spec,) = self.inputs(servable)
        outputs = await servable.infer_all(inputs[spec.name])
        return dict(zip(servable.model.output_names, outputs, strict=True))


class TextClassifierModel:
    """Texts in (BYTES, UTF-8), the category probabilities and the top category out."""

    kind: ClassVar[str] = "text-classification"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def inputs(self, servable: Servable) -> list[TensorSpec]:
        return [TensorSpec("text", "BYTES", (-1,))]

    def outputs(self, servable: Servable) -> list[TensorSpec]:
        labels = servable.contract.class_labels or ()
        return [
            TensorSpec("probabilities", "FP32", (-1, len(labels))),
            TensorSpec("label", "BYTES", (-1,)),
        ]

    async def infer(
        self, servable: Servable, inputs: dict[str, np.ndarray], parameters: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        try:
            texts = [element.decode("utf-8") for element in inputs["text"]]
        except UnicodeDecodeError:
            raise BadInferenceRequest("Input 'text' must hold UTF-8 text.") from None
        texts = check_texts(texts, self._settings.max_text_chars, self._settings.max_texts)
        features = await vectorize(servable.companion, texts)
        probabilities = await servable.infer(features)
        labels = np.array(servable.contract.class_labels or (), dtype=object)
        best = labels[np.argmax(probabilities, axis=1)] if len(labels) else labels
        return {"probabilities": probabilities.astype(np.float32), "label": best}


class DetectorModel:
    """RGB images (FP32, values 0-255, N x H x W x 3) in; detections out, in image pixels."""

    kind: ClassVar[str] = "object-detection"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def inputs(self, servable: Servable) -> list[TensorSpec]:
        return [TensorSpec("image", "FP32", (-1, -1, -1, 3))]

    def outputs(self, servable: Servable) -> list[TensorSpec]:
        return [
            TensorSpec("num_detections", "INT64", (-1,)),
            TensorSpec("detection_boxes", "FP32", (-1, -1, 4)),
            TensorSpec("detection_scores", "FP32", (-1, -1)),
            TensorSpec("detection_classes", "INT64", (-1, -1)),
            TensorSpec("detection_labels", "BYTES", (-1, -1)),
        ]

    def parameters(self, servable: Servable, given: dict[str, Any]) -> DetectionParameters:
        defaults = _detection(servable)

        def number(key: str, default: float, low: float, high: float) -> float:
            value = given.get(key, default)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (low <= value <= high)
            ):
                raise BadInferenceRequest(
                    f"Parameter '{key}' must be a number from {low} to {high}."
                )
            return value

        limit = number("max_detections", 100, 1, 1000)
        if int(limit) != limit:
            raise BadInferenceRequest("Parameter 'max_detections' must be an integer.")
        return DetectionParameters(
            confidence=float(number("confidence", defaults.confidence_threshold, 0, 1)),
            iou=float(number("iou", defaults.nms_iou_threshold, 0, 1)),
            max_detections=int(limit),
        )

    def _prepare(self, images: np.ndarray, input_size: int) -> list[PreparedImage]:
        _, height, width, _ = images.shape
        if height * width > self._settings.max_image_pixels or not height or not width:
            raise BadInferenceRequest(
                f"Images must have 1 to {self._settings.max_image_pixels} pixels; "
                f"these are {width} x {height}."
            )
        if not np.isfinite(images).all() or images.min() < 0 or images.max() > 255:
            raise BadInferenceRequest("Input 'image' holds RGB values, from 0 to 255.")
        pictures = [Image.fromarray(np.rint(row).astype(np.uint8), "RGB") for row in images]
        rows, placements = to_model_input(pictures, input_size)
        return [
            PreparedImage(picture, row[None], placement)
            for picture, row, placement in zip(pictures, rows, placements, strict=True)
        ]

    async def infer(
        self, servable: Servable, inputs: dict[str, np.ndarray], parameters: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        chosen = self.parameters(servable, parameters)
        settings = _detection(servable)
        prepared = await asyncio.to_thread(self._prepare, inputs["image"], settings.input_size)
        grids = await servable.infer(np.concatenate([p.rows for p in prepared]))
        found = await asyncio.to_thread(
            lambda: [
                decode_detections(grid, image, settings, chosen, servable.companion)
                for grid, image in zip(grids, prepared, strict=True)
            ]
        )
        return _padded(found)


def _detection(servable: Servable) -> DetectionSettings:
    detection = servable.contract.detection
    assert detection is not None  # protocol_model chose DetectorModel because it is there
    return detection


def _padded(found: list[list[Detection]]) -> dict[str, np.ndarray]:
    count, most = len(found), max((len(d) for d in found), default=0)
    boxes = np.zeros((count, most, 4), np.float32)
    scores = np.zeros((count, most), np.float32)
    classes = np.full((count, most), -1, np.int64)
    labels = np.full((count, most), b"", dtype=object)
    for row, detections in enumerate(found):
        for column, detection in enumerate(detections):
            boxes[row, column] = detection.box
            scores[row, column] = detection.confidence
            classes[row, column] = detection.class_id
            labels[row, column] = detection.label.encode()
    return {
        "num_detections": np.array([len(d) for d in found], np.int64),
        "detection_boxes": boxes,
        "detection_scores": scores,
        "detection_classes": classes,
        "detection_labels": labels,
    }


def protocol_model(servable: Servable, settings: Settings) -> ProtocolModel:
    """How a served model speaks the protocol, from what its metadata says it is."""
    contract = servable.contract
    if contract.task == "object-detection" and contract.detection is not None:
        return DetectorModel(settings)
    if contract.task == "text-classification" and servable.companion is not None:
        return TextClassifierModel(settings)
    return SignatureModel()
