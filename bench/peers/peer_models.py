"""What the app does around its models, for the peer servers of bench/peers.py.

LitServe (`litserve_server.py`) and BentoML (`bentoml_service.py`) both import this module, so
that they differ from the app only in the framework around the same steps: the repository
versions the app serves, loaded through `modelkit.load_model` as app/registry.py loads them
(ONNX Runtime, one intra-op thread, artifacts verified, a warm-up batch), and the app's pre-
and post-processing through the same modelkit functions (app/classification.py,
app/detection.py, app/images.py). The app itself is not imported: the peers' environments
have numpy, onnxruntime and Pillow, not the app's dependencies.

bench/peers.py passes what to serve in the environment (the app's own figures, from its
`GET /v1/models`): PEERS_MODELS_DIR, PEERS_<MODEL>_VERSION and PEERS_<MODEL>_MAX_BATCH_SIZE.
"""

from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from modelkit.detection import Letterbox, postprocess, read_words, to_model_input
from modelkit.metadata import DetectionSettings, ModelMetadata
from modelkit.repository import LoadedModel, load_model, read_metadata
from modelkit.text import TfidfVectorizer, load_vectorizer

# ONNX Runtime intra-op threads for every batch: the app's `threads` (1) unless bench/peers.py
# is given --peer-threads (the peers have no session for a lone request, as the app's
# `lone_threads`; more threads for every batch is their nearest alternative).
THREADS = int(os.environ.get("PEERS_THREADS", "1"))
MAX_DETECTIONS = 100  # the default of the app's `max_detections` query parameter
DEFAULT_TOP_K = 3  # the default of the app's ClassifyRequest.top_k


def models_dir() -> Path:
    return Path(os.environ["PEERS_MODELS_DIR"])


def version(name: str) -> int:
    return int(os.environ[f"PEERS_{name.upper()}_VERSION"])


def max_batch_size(name: str) -> int:
    return int(os.environ[f"PEERS_{name.upper()}_MAX_BATCH_SIZE"])


def load(name: str, signature: str = "serving_default", warm_up: bool = True) -> LoadedModel:
    """One signature of the version the app serves, warmed up as the app's registry does (a
    batch of zeros of 1 row and of the largest batch)."""
    model = load_model(models_dir(), name, version(name), signature=signature, threads=THREADS)
    if warm_up:
        spec = model.spec.input
        for rows in sorted({1, max_batch_size(name)}):
            model.predict(np.zeros([rows, *(d or 1 for d in spec.shape[1:])], dtype=spec.dtype))
    return model


def contract(name: str) -> ModelMetadata:
    """The typed metadata of the version the app serves, without loading its networks."""
    return ModelMetadata.from_json(read_metadata(models_dir(), name, version(name)))


def model_ref(model: ModelMetadata) -> dict[str, Any]:
    return {"name": model.name, "version": model.version}


# -- the classifier: app/routes/classify.py and app/classification.py ------------------------


def classifier() -> tuple[LoadedModel, TfidfVectorizer]:
    model = load("classifier")
    return model, load_vectorizer(model)


def classify_answer(
    model: ModelMetadata, probabilities: np.ndarray, top_k: int = DEFAULT_TOP_K
) -> dict[str, Any]:
    """One text's answer, shaped as the app's `POST /classify` (app/classification.py
    `top_categories`: a stable sort, most likely first, probabilities rounded to 6 places)."""
    labels = model.class_labels or ()
    order = np.argsort(-probabilities, kind="stable")[:top_k]
    categories = [
        {"label": labels[i], "probability": round(float(probabilities[i]), 6)} for i in order
    ]
    return {"model": model_ref(model), "predictions": [{"categories": categories}]}


# -- the detector: app/routes/detect.py and app/detection.py ---------------------------------


def detector() -> LoadedModel:
    """The grid signature, batched by the framework."""
    return load("detector")


def reader(model: ModelMetadata) -> LoadedModel | None:
    """A reading detector's reader (app/detection.py `load_reader`: the same version's signature
    of that name, one thread; it runs on each image's crops, unbatched)."""
    settings = detection_settings(model)
    if not settings.reader:
        return None
    return load("detector", settings.reader, warm_up=False)


def detection_settings(model: ModelMetadata) -> DetectionSettings:
    settings = model.detection
    if settings is None:
        raise ValueError(f"{model.name} version {model.version} is not a detector")
    return settings


@dataclass
class PreparedImage:
    image: Image.Image
    rows: np.ndarray  # (1, size, size, 3): the letterboxed model input
    placement: Letterbox


def prepare_image(encoded: str, input_size: int) -> PreparedImage:
    """`{"image": "<base64>"}`'s image as the model's input (app/detection.py `prepare_image`;
    decoding as app/images.py: EXIF orientation, then RGB. The app also flattens transparency
    onto white; the benchmark's images have none)."""
    image = Image.open(io.BytesIO(base64.b64decode(encoded, validate=True)))
    image = ImageOps.exif_transpose(image).convert("RGB")
    rows, (placement,) = to_model_input([image], input_size)
    return PreparedImage(image, rows, placement)


def to_pixels(rows: np.ndarray) -> np.ndarray:
    """Letterboxed rows as the 8-bit pixels they were made of, a quarter of the bytes to send
    to another process; `from_pixels` gives back the very same float32 rows."""
    return np.rint(rows * 255).astype(np.uint8)


def from_pixels(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32) / 255.0  # as `to_model_input` computes them


def detect_answer(
    model: ModelMetadata,
    prepared: PreparedImage,
    grid: np.ndarray,
    reader_model: LoadedModel | None,
) -> dict[str, Any]:
    """One image's answer from its grid, shaped as the app's `POST /detect` at the default
    thresholds (app/detection.py `decode_detections` and `detection_json`)."""
    settings = detection_settings(model)
    confidence, iou = settings.confidence_threshold, settings.nms_iou_threshold
    if reader_model is not None:
        detections = read_words(
            prepared.image, grid, prepared.placement, settings, reader_model,
            confidence, iou, MAX_DETECTIONS,
        )  # fmt: skip
    else:
        detections = postprocess(
            grid, prepared.placement, settings.input_size, settings.labels,
            confidence, iou, MAX_DETECTIONS,
        )  # fmt: skip
    width, height = prepared.image.size
    return {
        "model": model_ref(model),
        "image": {"width": width, "height": height},
        "detections": [
            {
                "label": detection.label,
                "confidence": round(detection.confidence, 6),
                "box": dict(zip(("x_min", "y_min", "x_max", "y_max"), detection.box, strict=True)),
            }
            for detection in detections
        ],
    }
