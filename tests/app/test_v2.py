"""`/v2`: the Open Inference Protocol over the real models, through the ASGI app.

Each model answers what its task route and `modelkit` in-process answer for the same input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from app.settings import Settings
from modelkit import load_model
from modelkit.text import load_vectorizer
from tests.app.conftest import serving
from tests.app.images import encoded, picture
from tests.conftest import MODELS_DIR

pytestmark = pytest.mark.anyio

TEXTS = ["The central bank raised interest rates by half a point.", "Striker scores twice."]


def words_image() -> Image.Image:
    """A gradient picture with "chat" and "rat" written large on it."""
    image = picture(320, 200)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=40)
    draw.text((20, 20), "chat", font=font, fill=(255, 255, 255), stroke_width=2, stroke_fill=0)
    draw.text((180, 120), "rat", font=font, fill=(255, 255, 255), stroke_width=2, stroke_fill=0)
    return image


def tensor(name: str, datatype: str, array: Any) -> dict[str, Any]:
    array = np.asarray(array)
    data = array.ravel().tolist() if datatype != "BYTES" else [str(t) for t in array.ravel()]
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def output(answer: dict[str, Any], name: str) -> np.ndarray:
    (entry,) = [o for o in answer["outputs"] if o["name"] == name]
    return np.array(entry["data"]).reshape(entry["shape"])


async def test_server_metadata_health_and_readiness() -> None:
    async with serving() as (client, _):
        meta = (await client.get("/v2")).json()
        assert meta["name"] == "model-gateway" and "binary_tensor_data" in meta["extensions"]
        assert (await client.get("/v2/health/live")).json() == {"live": True}
        assert (await client.get("/v2/health/ready")).status_code == 200
        for name in ("vae", "classifier", "detector"):
            assert (await client.get(f"/v2/models/{name}/ready")).status_code == 200


async def test_model_metadata_gives_the_served_version_inputs_and_outputs() -> None:
    async with serving() as (client, app):
        served = app.state.registry.current("vae").version
        meta = (await client.get("/v2/models/vae")).json()
        assert meta == {
            "name": "vae",
            "versions": [str(served)],
            "platform": "onnxruntime_onnx",
            "inputs": [{"name": "latent", "datatype": "FP32", "shape": [-1, 2]}],
            "outputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 28, 28]}],
        }
        assert (await client.get(f"/v2/models/vae/versions/{served}")).json() == meta
        text = (await client.get("/v2/models/classifier")).json()
        assert text["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
        assert [o["name"] for o in text["outputs"]] == ["probabilities", "label"]


async def test_vae_inference_equals_modelkit_in_process(models_root: Path) -> None:
    latents = np.array([[0.0, 0.0], [1.5, -0.5], [-2.0, 1.0]], np.float32)
    expected = load_model(models_root, "vae").predict(latents)
    async with serving() as (client, _):
        answer = (
            await client.post(
                "/v2/models/vae/infer",
                json={"id": "req-7", "inputs": [tensor("latent", "FP32", latents.tolist())]},
            )
        ).json()
    assert answer["id"] == "req-7" and answer["model_name"] == "vae"
    np.testing.assert_allclose(output(answer, "image"), expected, atol=1e-6)


async def test_classifier_takes_raw_text_and_equals_the_classify_route(models_root: Path) -> None:
    model = load_model(models_root, "classifier")
    expected = model.predict(load_vectorizer(model).transform(TEXTS))
    async with serving() as (client, _):
        answer = (
            await client.post(
                "/v2/models/classifier/infer",
                json={"inputs": [tensor("text", "BYTES", np.array(TEXTS, dtype=object))]},
            )
        ).json()
        route = (await client.post("/classify", json={"texts": TEXTS, "top_k": 5})).json()
    probabilities = output(answer, "probabilities")
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    labels = model.metadata["labels"]
    for row, prediction in zip(probabilities, route["predictions"], strict=True):
        for category in prediction["categories"]:
            assert row[labels.index(category["label"])] == pytest.approx(
                category["probability"], abs=1e-6
            )
    assert list(output(answer, "label")) == [
        p["categories"][0]["label"] for p in route["predictions"]
    ]


async def test_detector_takes_an_image_tensor_and_equals_the_detect_route() -> None:
    image = words_image()
    pixels = np.asarray(image, np.float32)[None]
    async with serving() as (client, _):
        answer = (
            await client.post(
                "/v2/models/detector/infer",
                json={
                    "inputs": [tensor("image", "FP32", pixels)],
                    "parameters": {"confidence": 0.3},
                },
            )
        ).json()
        route = (
            await client.post(
                "/detect",
                params={"confidence": 0.3},
                files={"image": ("words.png", encoded(image, "PNG"), "image/png")},
            )
        ).json()
    count = int(output(answer, "num_detections")[0])
    assert count == len(route["detections"]) > 0
    boxes, scores = output(answer, "detection_boxes")[0], output(answer, "detection_scores")[0]
    labels = output(answer, "detection_labels")[0]
    for index, detection in enumerate(route["detections"]):
        box = detection["box"]
        np.testing.assert_allclose(
            boxes[index], [box["x_min"], box["y_min"], box["x_max"], box["y_max"]], atol=0.01
        )
        assert scores[index] == pytest.approx(detection["confidence"], abs=1e-5)
        assert labels[index] == detection["label"]


async def test_a_batch_of_rows_is_rows_of_one_batch(models_root: Path) -> None:
    latents = np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32)
    async with serving() as (client, app):
        before = app.state.metrics.render()
        answer = (
            await client.post(
                "/v2/models/vae/infer", json={"inputs": [tensor("latent", "FP32", latents)]}
            )
        ).json()
        after = app.state.metrics.render()
    assert output(answer, "image").shape == (8, 28, 28)
    # One runtime call of 8 rows.
    assert _batch_metric(after, "count") - _batch_metric(before, "count") == 1
    assert _batch_metric(after, "sum") - _batch_metric(before, "sum") == 8


def _batch_metric(metrics: bytes, kind: str, model: str = "vae") -> float:
    for line in metrics.decode().splitlines():
        if line.startswith(f"app_inference_batch_size_{kind}") and f'model="{model}"' in line:
            return float(line.split()[-1])
    return 0.0


async def test_binary_inputs_and_outputs_follow_tritons_extension(models_root: Path) -> None:
    latents = np.array([[0.25, -1.0]], np.float32)
    header = json.dumps({
        "inputs": [{"name": "latent", "datatype": "FP32", "shape": [1, 2],
                    "parameters": {"binary_data_size": latents.nbytes}}],
        "outputs": [{"name": "image", "parameters": {"binary_data": True}}],
    }).encode()  # fmt: skip
    async with serving() as (client, _):
        response = await client.post(
            "/v2/models/vae/infer",
            content=header + latents.tobytes(),
            headers={
                "Inference-Header-Content-Length": str(len(header)),
                "Content-Type": "application/octet-stream",
            },
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    length = int(response.headers["inference-header-content-length"])
    (entry,) = json.loads(response.content[:length])["outputs"]
    assert entry["parameters"] == {"binary_data_size": 28 * 28 * 4}
    image = np.frombuffer(response.content[length:], "<f4").reshape(1, 28, 28)
    np.testing.assert_allclose(image, load_model(models_root, "vae").predict(latents), atol=1e-6)


async def test_requested_outputs_are_the_ones_sent_in_their_order() -> None:
    async with serving() as (client, _):
        answer = (
            await client.post(
                "/v2/models/classifier/infer",
                json={
                    "inputs": [tensor("text", "BYTES", np.array(TEXTS[:1], dtype=object))],
                    "outputs": [{"name": "label"}],
                },
            )
        ).json()
    assert [o["name"] for o in answer["outputs"]] == ["label"]


LATENT = {"name": "latent", "datatype": "FP32", "shape": [1, 2], "data": [0.0, 0.0]}


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("/v2/models/vae/infer", {"inputs": [{**LATENT, "shape": [1, 3], "data": [0, 0, 0]}]},
         400, "shape [1, 3]"),
        ("/v2/models/vae/infer", {"inputs": [{**LATENT, "datatype": "INT64", "data": [0, 0]}]},
         400, "must be FP32"),
        ("/v2/models/vae/infer", {"inputs": [{**LATENT, "name": "z"}]}, 400, "Unknown input 'z'"),
        ("/v2/models/vae/infer", {"inputs": [LATENT], "outputs": [{"name": "x"}]}, 400,
         "Unknown output 'x'"),
        ("/v2/models/nope/infer", {"inputs": [LATENT]}, 404, "no model 'nope'"),
        ("/v2/models/vae/versions/99/infer", {"inputs": [LATENT]}, 404, "version 99"),
        ("/v2/models/classifier/infer",
         {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": [" "]}]}, 422,
         "empty"),
        ("/v2/models/detector/infer",
         {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 2, 2, 3],
                      "data": [300.0] * 12}]}, 400, "0 to 255"),
        ("/v2/models/detector/infer",
         {"inputs": [{"name": "image", "datatype": "FP32", "shape": [1, 2, 2, 3],
                      "data": [1.0] * 12}], "parameters": {"confidence": 2}}, 400, "confidence"),
    ],
)  # fmt: skip
async def test_spec_errors_are_json_with_the_right_code(path, body, status, message) -> None:
    async with serving() as (client, _):
        response = await client.post(path, json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert message.lower() in error["error"].lower() and error["code"]


async def test_a_malformed_binary_header_and_an_oversized_body_are_refused() -> None:
    async with serving(Settings(models_dir=MODELS_DIR, poll_interval_s=0, max_body_bytes=4096)) as (
        client,
        _,
    ):
        bad = await client.post(
            "/v2/models/vae/infer",
            content=b'{"inputs": []}',
            headers={"Inference-Header-Content-Length": "abc"},
        )
        big = await client.post("/v2/models/vae/infer", content=b"x" * 5000)
        missing = await client.get("/v2/models/vae/versions/99")
    assert bad.status_code == 400 and "Inference-Header-Content-Length" in bad.json()["error"]
    assert big.status_code == 413 and big.json()["code"] == "body_too_large"
    assert missing.status_code == 404 and missing.json()["code"] == "version_not_found"
