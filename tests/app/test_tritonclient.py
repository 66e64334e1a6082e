"""A standard client, `tritonclient.http`, against the app served by `python -m app`.

JSON and binary tensor data, for the VAE's decoder, the classifier (BYTES text) and the
detector (an FP32 image tensor); the answers equal `modelkit` in-process. The same client goes
through the gateway with a bearer token in tests/e2e/test_protocol.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from modelkit import load_model
from modelkit.detection import detect
from modelkit.text import load_vectorizer
from tests.app.test_v2 import TEXTS, words_image
from tests.conftest import MODELS_DIR
from tests.harness import free_port, running_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    env = {"APP_MODELS_DIR": str(MODELS_DIR), "APP_PORT": str(port), "APP_POLL_INTERVAL_S": "0"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client, running_app(env, client):
        yield f"127.0.0.1:{port}"


@pytest.fixture
def client(server: str) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(server) as connection:
        yield connection


def test_live_ready_and_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    for name in ("vae", "classifier", "detector"):
        assert client.is_model_ready(name)
    meta = client.get_model_metadata("vae")
    assert meta["inputs"] == [{"name": "latent", "datatype": "FP32", "shape": [-1, 2]}]
    assert client.is_model_ready("vae", meta["versions"][0])
    assert not client.is_model_ready("vae", "999")
    config = client.get_model_config("detector")  # Triton's model configuration extension
    assert config["max_batch_size"] == 4  # models/detector/config.json
    assert config["input"] == [{"name": "image", "data_type": "TYPE_FP32", "dims": [-1, -1, 3]}]
    assert config["dynamic_batching"] == {"max_queue_delay_microseconds": 0}  # no wait
    classifier = client.get_model_config("classifier")
    assert classifier["input"] == [{"name": "text", "data_type": "TYPE_STRING", "dims": []}]
    # models/classifier/config.json: the one model whose batches wait for company
    assert classifier["dynamic_batching"] == {"max_queue_delay_microseconds": 2000}


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_vae_decoder(client: triton.InferenceServerClient, binary: bool) -> None:
    latents = np.array([[0.0, 0.0], [1.0, -1.5]], np.float32)
    latent = triton.InferInput("latent", list(latents.shape), "FP32")
    latent.set_data_from_numpy(latents, binary_data=binary)
    result = client.infer(
        "vae",
        [latent],
        outputs=[triton.InferRequestedOutput("image", binary_data=binary)],
        request_id="triton-1",
    )
    expected = load_model(MODELS_DIR, "vae").predict(latents)
    np.testing.assert_allclose(result.as_numpy("image"), expected, atol=1e-6)
    assert result.get_response()["id"] == "triton-1"


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_classifier_reads_bytes_text(client: triton.InferenceServerClient, binary: bool) -> None:
    texts = np.array([t.encode() for t in TEXTS], dtype=object)
    text = triton.InferInput("text", [len(TEXTS)], "BYTES")
    text.set_data_from_numpy(texts, binary_data=binary)
    result = client.infer(
        "classifier",
        [text],
        outputs=[
            triton.InferRequestedOutput("probabilities", binary_data=binary),
            triton.InferRequestedOutput("label", binary_data=binary),
        ],
    )
    model = load_model(MODELS_DIR, "classifier")
    expected = model.predict(load_vectorizer(model).transform(TEXTS))
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected, atol=1e-6)
    labels = [model.metadata["labels"][i] for i in expected.argmax(axis=1)]
    # tritonclient gives BYTES as str from JSON data and as bytes from binary data
    got = [
        label if isinstance(label, str) else label.decode() for label in result.as_numpy("label")
    ]
    assert got == labels


def test_detector_reads_an_image_tensor(client: triton.InferenceServerClient) -> None:
    image = words_image()
    image_input = triton.InferInput("image", [1, image.height, image.width, 3], "FP32")
    image_input.set_data_from_numpy(np.asarray(image, np.float32)[None], binary_data=True)
    result = client.infer("detector", [image_input], parameters={"confidence": 0.3})
    grid = load_model(MODELS_DIR, "detector")
    reader = load_model(MODELS_DIR, "detector", signature="reader")
    (expected,) = detect([image], grid, reader=reader, confidence=0.3)
    count = int(result.as_numpy("num_detections")[0])
    assert count == len(expected) > 0
    np.testing.assert_allclose(
        result.as_numpy("detection_boxes")[0, :count], [d.box for d in expected], atol=0.01
    )
    assert [c for c in result.as_numpy("detection_classes")[0, :count]] == [
        d.class_id for d in expected
    ]


def test_errors_reach_the_client_as_messages(client: triton.InferenceServerClient) -> None:
    wrong = triton.InferInput("latent", [1, 3], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 3), np.float32))
    with pytest.raises(InferenceServerException, match=r"shape \[1, 3\]"):
        client.infer("vae", [wrong])
    with pytest.raises(InferenceServerException, match="no model 'nope'"):
        client.get_model_metadata("nope")
