"""The baseline of the serving benchmark: what most tutorials show.

FastAPI loads each Keras model at start-up and calls `model.predict` once per request, inside
the request handler: no batching, no ONNX, the event loop blocked while the model runs.
Pre- and post-processing are the service's own functions, so the comparison is about serving
only. Run with `uvicorn naive_app:app --app-dir bench`; `NAIVE_MODELS_DIR` and
`NAIVE_MODELS` (comma-separated) choose the models.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import keras
from fastapi import FastAPI
from pydantic import BaseModel

from app.classification import top_categories
from app.detection import detection_json
from app.generation import DecodedSamples, sample_latents
from app.images import decode_image
from modelkit.detection import postprocess, to_model_input
from modelkit.repository import latest_version, read_metadata, version_path

MODELS_DIR = Path(os.environ.get("NAIVE_MODELS_DIR", "models"))
MODELS = [n for n in os.environ.get("NAIVE_MODELS", "vae,classifier,detector").split(",") if n]

models: dict[str, Any] = {}
metadata: dict[str, dict[str, Any]] = {}
vectorizers: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    for name in MODELS:
        path = version_path(MODELS_DIR, name, latest_version(MODELS_DIR, name))
        metadata[name] = read_metadata(MODELS_DIR, name)
        keras_file = metadata[name]["signatures"]["serving_default"]["keras"]
        models[name] = keras.saving.load_model(path / keras_file, compile=False)
        if name == "classifier":
            from modelkit.text import load_vectorizer

            vectorizers[name] = load_vectorizer(path)
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/readyz")
async def readyz() -> dict[str, bool]:
    return {"ready": True}


@app.get("/vae/sample")
async def vae_sample(n: int = 1, seed: int | None = None) -> dict[str, Any]:
    seed = secrets.randbits(63) if seed is None else seed
    latents = sample_latents(n, seed, 2)
    images = models["vae"].predict(latents, verbose=0)
    return {"seed": seed, "samples": DecodedSamples(latents, images).as_json()}


class ClassifyBody(BaseModel):
    text: str
    top_k: int = 3


@app.post("/classify")
async def classify(body: ClassifyBody) -> dict[str, Any]:
    features = vectorizers["classifier"].transform([body.text])
    probabilities = models["classifier"].predict(features, verbose=0)
    labels = metadata["classifier"]["labels"]
    return {"predictions": [{"categories": top_categories(probabilities, labels, body.top_k)[0]}]}


class DetectBody(BaseModel):
    image: str


@app.post("/detect")
async def detect(body: DetectBody) -> dict[str, Any]:
    settings = metadata["detector"]["detection"]
    size = int(settings["input_size"])
    image = decode_image(base64.b64decode(body.image), 25_000_000)
    rows, (placement,) = to_model_input([image], size)
    grid = models["detector"].predict(rows, verbose=0)[0]
    found = postprocess(
        grid,
        placement,
        size,
        settings["labels"],
        settings["confidence_threshold"],
        settings["nms_iou_threshold"],
        100,
    )
    width, height = image.size
    return {
        "image": {"width": width, "height": height},
        "detections": [detection_json(d) for d in found],
    }
