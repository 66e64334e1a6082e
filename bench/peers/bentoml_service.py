"""BentoML peer of bench/peers.py: the app's `POST /classify` and `POST /detect` on BentoML.

    .venv-bentoml/bin/bentoml serve bentoml_service:Gateway --working-dir bench/peers \\
        --host 127.0.0.1 --port 8002     (bench/peers.py runs it, with the PEERS_* variables
                                          of peer_models.py and the project root on PYTHONPATH)

Three services, one worker process each, in the pattern BentoML documents for adaptive
batching of requests with more than one field ("Handle multiple parameters"): `Gateway` takes
the app's JSON bodies and calls, through `bentoml.depends`, the batchable API of
`ClassifierModel` (texts -> probabilities: tf-idf and the network, at most
PEERS_CLASSIFIER_MAX_BATCH_SIZE texts per batch) and of `DetectorModel` (letterboxed images ->
grids, at most PEERS_DETECTOR_MAX_BATCH_SIZE; sent as 8-bit pixels, which made /detect at
concurrency 32 ~10 % faster than float32 rows). Gateway does the rest as the app does: the
image's decoding and letterbox before the batch, the reader and the answer after it, both in
a worker thread (the app's `asyncio.to_thread`); the top categories on the event loop.

Adaptive batching: BentoML's dispatcher sizes each batch from the latencies it measures, and
cancels (503) a request it expects to finish later than `max_latency_ms`
(PEERS_BENTOML_MAX_LATENCY_MS): that is a deadline, not a batching window, so it is set far
above any latency under the benchmark's load. Access logs are off (the app runs without them
too). Readiness: BentoML's `GET /readyz`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import bentoml
import numpy as np
import peer_models

MAX_LATENCY_MS = int(os.environ.get("PEERS_BENTOML_MAX_LATENCY_MS", "10000"))
SERVICE: dict[str, Any] = {"workers": 1, "logging": {"access": {"enabled": False}}}
# Gateway's client session to a dependency is replaced after `max_requests` calls (100 by
# default), closing it under the calls still in flight on it: at concurrency 32 a few percent
# of them failed ("Connector is closed"). Never replaced during a run:
BATCHING_SERVICE = {**SERVICE, "runner_connection": {"max_requests": 10**9, "max_age": 1e6}}


@bentoml.service(**BATCHING_SERVICE)
class ClassifierModel:
    def __init__(self) -> None:
        self.model, self.vectorizer = peer_models.classifier()

    @bentoml.api(
        batchable=True,
        max_batch_size=peer_models.max_batch_size("classifier"),
        max_latency_ms=MAX_LATENCY_MS,
    )
    def probabilities(self, texts: list[str]) -> np.ndarray:
        return self.model.predict(self.vectorizer.transform(texts))


@bentoml.service(**BATCHING_SERVICE)
class DetectorModel:
    def __init__(self) -> None:
        self.model = peer_models.detector()

    @bentoml.api(
        batchable=True,
        max_batch_size=peer_models.max_batch_size("detector"),
        max_latency_ms=MAX_LATENCY_MS,
    )
    def grids(self, pixels: np.ndarray) -> np.ndarray:
        return self.model.predict(peer_models.from_pixels(pixels))


@bentoml.service(**SERVICE)
class Gateway:
    classifier_model = bentoml.depends(ClassifierModel)
    detector_model = bentoml.depends(DetectorModel)

    def __init__(self) -> None:
        # The models' metadata and the detector's reader: the batched networks run in the two
        # services above.
        self.classifier = peer_models.contract("classifier")
        self.detector = peer_models.contract("detector")
        self.reader = peer_models.reader(self.detector)
        self.input_size = peer_models.detection_settings(self.detector).input_size

    @bentoml.api(route="/classify")
    async def classify(self, text: str, top_k: int = peer_models.DEFAULT_TOP_K) -> dict[str, Any]:
        (probabilities,) = await self.classifier_model.to_async.probabilities([text])
        return peer_models.classify_answer(self.classifier, np.asarray(probabilities), top_k)

    @bentoml.api(route="/detect")
    async def detect(self, image: str) -> dict[str, Any]:
        prepared = await asyncio.to_thread(peer_models.prepare_image, image, self.input_size)
        grids = await self.detector_model.to_async.grids(peer_models.to_pixels(prepared.rows))
        return await asyncio.to_thread(
            peer_models.detect_answer, self.detector, prepared, grids[0], self.reader
        )
