"""LitServe peer of bench/peers.py: the app's `POST /classify` and `POST /detect` on LitServe.

    .venv-litserve/bin/python bench/peers/litserve_server.py --port 8001   (bench/peers.py runs
    it, with the PEERS_* variables of peer_models.py and the project root on PYTHONPATH)

One LitServer with two LitAPIs, one inference worker process each (`workers_per_device=1` on
the CPU) and one API server process. LitServe runs every hook of a request in the inference
worker, in order: `decode_request` on each request of a batch, `batch`, `predict`, `unbatch`,
`encode_response` on each; the API server process only parses the JSON and queues it. The
batches are the app's sizes (PEERS_<MODEL>_MAX_BATCH_SIZE: 32 texts, 4 images), formed within
`--batch-timeout-ms`. The steps around the models are the app's, through modelkit
(peer_models.py). Readiness: LitServe's `GET /health`, 200 once every worker has set up.
"""

from __future__ import annotations

import argparse
from typing import Any

import litserve as ls
import numpy as np
import peer_models


class ClassifierAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.model, self.vectorizer = peer_models.classifier()

    # `request` stays unannotated: LitServe takes the annotation for the endpoint's body type;
    # without one, its API server parses the JSON body and this hook gets the dict.
    def decode_request(self, request) -> tuple[str, int]:
        return request["text"], int(request.get("top_k", peer_models.DEFAULT_TOP_K))

    def batch(self, inputs: list[tuple[str, int]]) -> tuple[np.ndarray, list[int]]:
        texts, top_ks = zip(*inputs, strict=True)
        return self.vectorizer.transform(list(texts)), list(top_ks)

    def predict(self, x: tuple[np.ndarray, list[int]]) -> tuple[np.ndarray, list[int]]:
        features, top_ks = x
        return self.model.predict(features), top_ks

    def unbatch(self, output: tuple[np.ndarray, list[int]]) -> list[tuple[np.ndarray, int]]:
        probabilities, top_ks = output
        return list(zip(probabilities, top_ks, strict=True))

    def encode_response(self, output: tuple[np.ndarray, int]) -> dict[str, Any]:
        return peer_models.classify_answer(self.model.contract, *output)


class DetectorAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        self.model = peer_models.detector()
        self.reader = peer_models.reader(self.model.contract)
        self.input_size = peer_models.detection_settings(self.model.contract).input_size

    def decode_request(self, request) -> peer_models.PreparedImage:  # unannotated: see above
        return peer_models.prepare_image(request["image"], self.input_size)

    def batch(
        self, inputs: list[peer_models.PreparedImage]
    ) -> tuple[np.ndarray, list[peer_models.PreparedImage]]:
        return np.concatenate([prepared.rows for prepared in inputs]), inputs

    def predict(
        self, x: tuple[np.ndarray, list[peer_models.PreparedImage]]
    ) -> list[dict[str, Any]]:
        rows, prepared = x
        grids = self.model.predict(rows)
        # The words are read here, image by image (in the app: after the batch, in a thread).
        return [
            peer_models.detect_answer(self.model.contract, image, grid, self.reader)
            for image, grid in zip(prepared, grids, strict=True)
        ]

    def unbatch(self, output: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return output

    def encode_response(self, output: dict[str, Any]) -> dict[str, Any]:
        return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--batch-timeout-ms", type=float, required=True)
    args = parser.parse_args()
    timeout = args.batch_timeout_ms / 1000
    apis = [
        ClassifierAPI(
            api_path="/classify",
            max_batch_size=peer_models.max_batch_size("classifier"),
            batch_timeout=timeout,
        ),
        DetectorAPI(
            api_path="/detect",
            max_batch_size=peer_models.max_batch_size("detector"),
            batch_timeout=timeout,
        ),
    ]
    server = ls.LitServer(apis, accelerator="cpu", workers_per_device=1)
    server.run(
        host="127.0.0.1",
        port=args.port,
        num_api_servers=1,
        log_level="warning",
        generate_client_file=False,
    )


if __name__ == "__main__":  # the inference workers are spawned: they import this file
    main()
