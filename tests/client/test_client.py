"""The library against a real gateway: every route's request and typed answer."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
import pytest
from mgw import Detection, Gateway, GatewayError, InferResult, Prediction, Tensor, draw_detections
from PIL import Image

from tests.e2e.stack import Stack, wait_until

from .conftest import Recorder, iou, recording_gateway

STRIKER = "The striker scored twice in the cup final."
RATES = "The central bank raised interest rates by half a point."


def _assert_reads_the_words(
    found: list[Detection], boxes: dict[str, tuple[int, int, int, int]]
) -> None:
    assert sorted(d.label for d in found) == ["chat", "rat"], found
    for detection in found:
        assert iou(detection.box.as_tuple(), boxes[detection.label]) >= 0.5, detection
        assert 0 < detection.confidence <= 1


def test_classify_one_text(gw: Gateway) -> None:
    prediction = gw.classify(STRIKER)
    assert isinstance(prediction, Prediction)
    assert prediction.label == "sport"
    assert len(prediction.categories) == 3
    probabilities = [c.probability for c in prediction.categories]
    assert probabilities == sorted(probabilities, reverse=True)
    assert prediction.probability == probabilities[0] > 0.5


def test_classify_several_texts_keeps_their_order(gw: Gateway) -> None:
    predictions = gw.classify([STRIKER, RATES], top_k=1)
    assert [p.label for p in predictions] == ["sport", "business"]
    assert all(len(p.categories) == 1 for p in predictions)
    assert len(gw.classify([RATES], top_k=5)[0].categories) == 5


def test_detect_takes_a_path_bytes_a_file_and_a_pil_image(
    gw: Gateway, photo: Path, word_boxes: dict[str, tuple[int, int, int, int]]
) -> None:
    with photo.open("rb") as file:
        inputs = [photo, str(photo), photo.read_bytes(), file, Image.open(photo)]
        for image in inputs:
            _assert_reads_the_words(gw.detect(image), word_boxes)


def test_detect_sends_its_thresholds(gw: Gateway, photo: Path) -> None:
    assert gw.detect(photo, confidence=1.0) == []
    assert len(gw.detect(photo, max_detections=1)) == 1


def test_detections_drawn_on_the_image(gw: Gateway, photo: Path) -> None:
    found = gw.detect(photo)
    drawn = draw_detections(photo, found)
    original = Image.open(photo).convert("RGB")
    assert drawn.size == original.size
    box = found[0].box
    left_edge = (round(box.x_min), round((box.y_min + box.y_max) / 2))
    assert drawn.getpixel(left_edge) != original.getpixel(left_edge)  # the outline is there


def test_sample_is_seeded(gw: Gateway) -> None:
    first = gw.sample(3, seed=7)
    assert first.seed == 7 and first.grid is None
    assert len(first) == 3 and len(first.latents) == 3
    assert all(isinstance(image, Image.Image) and image.size == (28, 28) for image in first)
    again = gw.sample(3, seed=7)
    assert [image.tobytes() for image in again] == [image.tobytes() for image in first]
    assert again.latents == first.latents
    unseeded = gw.sample(2)
    assert isinstance(unseeded.seed, int)


def test_walk_and_decode_agree(gw: Gateway) -> None:
    walk = gw.walk(4)
    assert walk.grid == 4 and walk.seed is None and len(walk) == 16
    assert walk.tile().size == (4 * 28, 4 * 28)
    decoded = gw.decode(walk.latents[:2])
    assert [image.tobytes() for image in decoded] == [image.tobytes() for image in walk[:2]]
    as_array = gw.decode(np.array(walk.latents[5:6]))
    assert as_array[0].tobytes() == walk[5].tobytes()


def test_samples_tile_as_the_gateway_does(gw: Gateway, stack: Stack) -> None:
    import httpx

    walk = gw.walk(3)
    response = httpx.get(
        f"{stack.url}/vae/sample",
        params={"grid": 3, "format": "png"},
        headers={"Authorization": f"Bearer {gw.token().access_token}"},
    )
    served = Image.open(io.BytesIO(response.content))
    assert walk.tile().convert("L").tobytes() == served.convert("L").tobytes()


def test_models(gw: Gateway) -> None:
    models = {model.name: model for model in gw.models()}
    assert {"classifier", "detector", "vae"} <= models.keys()
    assert models["classifier"].state == "AVAILABLE"
    assert models["classifier"].labels is not None and "sport" in models["classifier"].labels
    assert isinstance(models["vae"].version, int)
    assert models["vae"].raw["signature"]["inputs"][0]["name"] == "latent"
    assert gw.model("vae") == models["vae"]
    with pytest.raises(GatewayError) as caught:
        gw.model("no-such-model")
    assert (caught.value.status, caught.value.error) == (404, "model_not_found")


def test_infer_on_the_open_inference_protocol(gw: Gateway) -> None:
    result = gw.infer("classifier", {"text": [STRIKER, RATES]})
    assert isinstance(result, InferResult)
    assert result.model_name == "classifier"
    assert result["label"].data == ["sport", "business"]
    probabilities = result["probabilities"]
    assert probabilities.datatype == "FP32" and probabilities.shape[0] == 2

    latents = np.array([[0.0, 0.5], [-1.0, 1.0]], np.float32)
    images = gw.infer("vae", {"latent": latents}, outputs=["image"], request_id="r-1")
    assert images.id == "r-1"
    assert images["image"].numpy().shape == (2, 28, 28)
    as_tensor = gw.infer("vae", [Tensor("latent", "FP32", (1, 2), [0.0, 0.5])])
    assert as_tensor["image"].data == images["image"].data[: 28 * 28]


def test_infer_passes_parameters(gw: Gateway, photo: Path) -> None:
    pixels = np.asarray(Image.open(photo).convert("RGB"), np.float32)[None]
    found = gw.infer("detector", {"image": pixels})
    assert found["num_detections"].data == [2]
    none = gw.infer("detector", {"image": pixels}, parameters={"confidence": 1.0})
    assert none["num_detections"].data == [0]


def test_one_token_for_many_calls_and_threads(stack: Stack, recorder: Recorder) -> None:
    with recording_gateway(stack, "full", recorder) as gateway:
        gateway.classify(STRIKER)
        gateway.models()
        gateway.sample(1, seed=1)
        errors: list[BaseException] = []

        def call() -> None:
            try:
                gateway.classify(RATES)
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors
    assert recorder.token_requests == 1
    assert recorder.count("/classify", 200) == 9


def test_concurrent_first_calls_fetch_one_token(stack: Stack, recorder: Recorder) -> None:
    with recording_gateway(stack, "full", recorder) as gateway:
        barrier = threading.Barrier(6)

        def call() -> None:
            barrier.wait()
            gateway.models()

        threads = [threading.Thread(target=call) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert recorder.token_requests == 1
    assert recorder.count("/v1/models", 200) == 6


def test_scope_narrows_the_token(stack: Stack) -> None:
    with Gateway(stack.url, "full", stack.secrets["full"], scope="vae") as gateway:
        assert gateway.token().scopes == ("vae",)
        assert len(gateway.sample(1)) == 1
        with pytest.raises(GatewayError) as caught:
            gateway.classify(STRIKER)
    assert (caught.value.status, caught.value.error) == (403, "insufficient_scope")


def test_the_secret_stays_out_of_reprs(stack: Stack) -> None:
    secret = stack.secrets["full"]
    with Gateway(stack.url, "full", secret) as gateway:
        token = gateway.token()
        assert secret not in repr(gateway)
        assert token.access_token not in repr(token)


def test_the_access_log_names_the_client(gw: Gateway, stack: Stack) -> None:
    gw.models()
    assert wait_until(
        lambda: any(str(r["user_agent"]).startswith("mgw/") for r in stack.access_log()), 5
    )
