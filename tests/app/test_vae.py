"""`/vae/sample` and `/vae/decode` on the committed VAE."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.generation import sample_latents, walk_latents
from app.logging import JsonFormatter
from app.settings import ModelOptions, Settings
from modelkit.repository import load_model, read_metadata
from tests.app.conftest import requires_model, serving

pytestmark = [pytest.mark.anyio, requires_model("vae")]

ONLY_VAE = {"models": ["vae"]}


def pixels(encoded_png: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded_png))), dtype=np.int16)


def expected_pixels(models_root: Path, latents: np.ndarray) -> np.ndarray:
    """What the decoder gives for `latents`, run directly, as 8-bit grayscale."""
    images = load_model(models_root, "vae").predict(np.asarray(latents, dtype=np.float32))
    images = images.reshape(len(latents), images.shape[1], images.shape[2])
    return np.round(np.clip(images, 0, 1) * 255).astype(np.int16)


async def test_sample_decodes_seeded_prior_draws(models_root: Path) -> None:
    async with serving(**ONLY_VAE) as (client, _):
        first = await client.get("/vae/sample", params={"n": 4, "seed": 7})
        again = await client.get("/vae/sample", params={"n": 4, "seed": 7})
        other = await client.get("/vae/sample", params={"n": 4, "seed": 8})
        unseeded = await client.get("/vae/sample", params={"n": 2})
    assert first.status_code == 200
    body = first.json()
    version = read_metadata(models_root, "vae")["version"]
    assert body["model"] == {"name": "vae", "version": version}
    assert body["seed"] == 7 and body["grid"] is None
    latents = sample_latents(4, 7, 2)
    np.testing.assert_allclose([s["latent"] for s in body["samples"]], latents, atol=1e-6)
    got = np.stack([pixels(s["image"]) for s in body["samples"]])
    assert np.abs(got - expected_pixels(models_root, latents)).max() <= 1
    assert again.json() == body, "same seed, same images"
    assert other.json()["samples"] != body["samples"]
    assert isinstance(unseeded.json()["seed"], int), "an unseeded answer says how to repeat it"


async def test_grid_walks_the_latent_range_from_metadata(models_root: Path) -> None:
    low, high = read_metadata(models_root, "vae")["latent"]["walk_range"]
    async with serving(**ONLY_VAE) as (client, _):
        answer = await client.get("/vae/sample", params={"grid": 5})
        sheet = await client.get("/vae/sample", params={"grid": 5, "format": "png"})
        described = (await client.get("/v1/models/vae")).json()
    # The model's description says what the walk covers (the playground's plane spans it).
    assert described["latent"] == {"size": 2, "walk_range": [low, high]}
    latents = np.array([s["latent"] for s in answer.json()["samples"]])
    assert latents.shape == (25, 2)
    np.testing.assert_allclose(latents, walk_latents(5, (low, high)), atol=1e-5)
    np.testing.assert_allclose(latents[0], [low, high], atol=1e-5)
    np.testing.assert_allclose(latents[-1], [high, low], atol=1e-5)
    assert sheet.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(sheet.content))
    tile = pixels(answer.json()["samples"][0]["image"])
    assert image.size == (5 * tile.shape[1], 5 * tile.shape[0])
    np.testing.assert_array_equal(np.asarray(image)[: tile.shape[0], : tile.shape[1]], tile)


async def test_png_format_tiles_the_samples() -> None:
    async with serving(**ONLY_VAE) as (client, _):
        answer = await client.get("/vae/sample", params={"n": 5, "seed": 1, "format": "png"})
    image = Image.open(io.BytesIO(answer.content))
    assert answer.headers["x-model-name"] == "vae"
    assert image.mode == "L"
    assert image.size[0] == 3 * image.size[1] // 2, "5 samples: 3 columns, 2 rows"


async def test_decode_gives_the_images_of_the_given_latents(models_root: Path) -> None:
    latents = [[0.0, 0.0], [1.5, -0.5], [-2.0, 2.0]]
    async with serving(**ONLY_VAE) as (client, _):
        answer = await client.post("/vae/decode", json={"latents": latents})
    got = np.stack([pixels(s["image"]) for s in answer.json()["samples"]])
    assert np.abs(got - expected_pixels(models_root, np.array(latents))).max() <= 1


@pytest.mark.parametrize(
    ("method", "path", "payload", "code"),
    [
        ("get", "/vae/sample?n=0", None, "invalid_request"),
        ("get", "/vae/sample?n=257", None, "invalid_request"),
        ("get", "/vae/sample?n=two", None, "invalid_request"),
        ("get", "/vae/sample?seed=-1", None, "invalid_request"),
        ("get", "/vae/sample?grid=1", None, "invalid_request"),
        ("get", "/vae/sample?grid=17", None, "invalid_request"),
        ("get", "/vae/sample?format=gif", None, "invalid_request"),
        ("post", "/vae/decode", {}, "invalid_request"),
        ("post", "/vae/decode", {"latents": []}, "invalid_request"),
        ("post", "/vae/decode", {"latents": [[0.0, 0.0]] * 257}, "invalid_request"),
        ("post", "/vae/decode", {"latents": [["a", 0.0]]}, "invalid_request"),
        ("post", "/vae/decode", {"latents": [[0.0, 0.0, 0.0]]}, "invalid_input"),
        ("post", "/vae/decode", {"latents": [[0.0, 0.0], [1.0]]}, "invalid_input"),
        ("post", "/vae/decode", {"latents": [[0.0, "nan"]]}, "invalid_input"),
    ],
)
async def test_bad_parameters_are_422(method: str, path: str, payload: object, code: str) -> None:
    async with serving(**ONLY_VAE) as (client, _):
        answer = await client.request(method, path, json=payload)
    assert answer.status_code == 422
    assert answer.json()["error"] == code
    assert answer.json()["detail"]


async def test_64_concurrent_requests_are_batched_and_equal_single_answers() -> None:
    latents = sample_latents(64, 3, 2).round(4).tolist()
    async with serving(**ONLY_VAE) as (client, _):
        singles = [
            (await client.post("/vae/decode", json={"latents": [z]})).json() for z in latents[:8]
        ]
        batched = await asyncio.gather(
            *(client.post("/vae/decode", json={"latents": [z]}) for z in latents)
        )
        metrics = (await client.get("/metrics")).text
    assert all(answer.status_code == 200 for answer in batched)
    for latent, answer in zip(latents, batched, strict=True):
        np.testing.assert_allclose(answer.json()["samples"][0]["latent"], latent, atol=1e-6)
    for single, answer in zip(singles, batched[:8], strict=True):
        diff = pixels(single["samples"][0]["image"]) - pixels(answer.json()["samples"][0]["image"])
        assert np.abs(diff).max() <= 1
    count = float(metrics.split('app_inference_batch_size_count{model="vae"} ')[1].split()[0])
    total = float(metrics.split('app_inference_batch_size_sum{model="vae"} ')[1].split()[0])
    assert total >= 8 + 64
    assert count < 8 + 64, "some of the 64 concurrent requests shared a runtime call"


async def test_batching_off_gives_the_same_answers() -> None:
    latents = [[0.25, -1.0], [2.0, 0.5]]
    off = {"vae": ModelOptions(batching=False)}
    async with serving(**ONLY_VAE) as (client, _):
        on_answer = (await client.post("/vae/decode", json={"latents": latents})).json()
    async with serving(**ONLY_VAE, model_settings=off) as (client, _):
        off_answer = (await client.post("/vae/decode", json={"latents": latents})).json()
    assert off_answer == on_answer


async def test_a_full_queue_answers_503_with_retry_after() -> None:
    tight = {"vae": ModelOptions(max_batch_size=1, max_queue_size=1)}
    async with serving(**ONLY_VAE, model_settings=tight, retry_after_s=2) as (client, _):
        answers = await asyncio.gather(
            *(client.get("/vae/sample", params={"n": 256, "seed": i}) for i in range(64))
        )
        metrics = (await client.get("/metrics")).text
    refused = [a for a in answers if a.status_code == 503]
    served = [a for a in answers if a.status_code == 200]
    assert refused and served and len(refused) + len(served) == 64
    for answer in refused:
        assert answer.headers["retry-after"] == "2"
        assert answer.json()["error"] == "overloaded"
    assert f'app_inference_rejected_total{{model="vae"}} {float(len(refused))}' in metrics
    assert 'app_inference_queue_depth{model="vae"} 0.0' in metrics, "the queue drained"


async def test_access_line_names_model_version_and_batch(
    models_root: Path, app_logs: list[logging.LogRecord]
) -> None:
    async with serving(**ONLY_VAE) as (client, _):
        await client.get("/vae/sample", params={"n": 3, "seed": 1}, headers={"X-Client-Id": "c1"})
    lines = [json.loads(JsonFormatter().format(r)) for r in app_logs if r.name == "app.access"]
    line = lines[-1]
    assert (line["path"], line["status"], line["client_id"]) == ("/vae/sample", 200, "c1")
    assert line["model"] == "vae"
    assert line["version"] == read_metadata(models_root, "vae")["version"]
    assert line["batch_size"] == 3


def copy_version(source: Path, root: Path, version: int) -> Path:
    """The committed VAE version, republished under another version number."""
    target = root / "vae" / str(version)
    shutil.copytree(source, target)
    metadata = json.loads((target / "metadata.json").read_text())
    metadata["version"] = version
    (target / "metadata.json").write_text(json.dumps(metadata))
    return target


async def test_reload_serves_a_new_version_and_refuses_a_broken_one(
    models_root: Path, tmp_path: Path
) -> None:
    committed = models_root / "vae" / str(read_metadata(models_root, "vae")["version"])
    copy_version(committed, tmp_path, 1)
    settings = Settings(models_dir=tmp_path, models=["vae"], poll_interval_s=0)
    async with serving(settings) as (client, _):
        before = (await client.get("/vae/sample", params={"seed": 3})).json()
        copy_version(committed, tmp_path, 2)
        assert (await client.post("/v1/models/vae/reload")).json()["version"] == 2
        after = (await client.get("/vae/sample", params={"seed": 3})).json()
        broken = copy_version(committed, tmp_path, 3)
        (broken / "model.onnx").write_bytes(b"\x00" * 64)
        refused = await client.post("/v1/models/vae/reload")
        still = (await client.get("/vae/sample", params={"seed": 3})).json()
    assert before["model"]["version"] == 1 and after["model"]["version"] == 2
    assert after["samples"] == before["samples"], "same weights, same images"
    assert refused.status_code == 409 and "model.onnx" in refused.json()["detail"]
    assert still["model"]["version"] == 2
