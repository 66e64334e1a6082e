"""Both runtimes give the same answers on the committed models, through the app."""

from __future__ import annotations

import base64
import importlib.util
from typing import Any

import pytest

from app.settings import ModelOptions
from tests.app.conftest import requires_model, serving
from tests.app.images import encoded
from tests.app.test_detect import scene
from tests.app.test_vae import pixels

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("tensorflow") is None, reason="TensorFlow is not installed"
    ),
]

CALLS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "vae": ("GET", "/vae/sample", {"params": {"n": 8, "seed": 11}}),
    "classifier": (
        "POST",
        "/classify",
        {"json": {"texts": ["Shares fell sharply on Monday.", "The team won the league."]}},
    ),
    "detector": (
        "POST",
        "/detect",
        {
            "params": {"confidence": 0.05},
            "json": {"image": base64.b64encode(encoded(scene(1), "PNG")).decode()},
        },
    ),
}


def close_enough(onnx: Any, tensorflow: Any) -> None:
    """Equal structure; numbers within 1e-4; PNG pixels (base64) within one grey level."""
    if isinstance(onnx, dict):
        assert onnx.keys() == tensorflow.keys()
        for key in onnx:
            close_enough(onnx[key], tensorflow[key])
    elif isinstance(onnx, list):
        assert len(onnx) == len(tensorflow)
        for mine, theirs in zip(onnx, tensorflow, strict=True):
            close_enough(mine, theirs)
    elif isinstance(onnx, float):
        assert onnx == pytest.approx(tensorflow, abs=1e-3)
    elif isinstance(onnx, str) and len(onnx) > 100:
        assert abs(pixels(onnx) - pixels(tensorflow)).max() <= 1
    else:
        assert onnx == tensorflow


@pytest.mark.parametrize("name", [pytest.param(name, marks=requires_model(name)) for name in CALLS])
async def test_tensorflow_and_onnxruntime_agree(name: str) -> None:
    method, path, options = CALLS[name]
    answers = {}
    for runtime in ("onnxruntime", "tensorflow"):
        settings = {name: ModelOptions(runtime=runtime)}
        async with serving(models=[name], model_settings=settings) as (client, _):
            status = (await client.get(f"/v1/models/{name}")).json()
            assert status["runtime"] == runtime and status["state"] == "AVAILABLE"
            answer = await client.request(method, path, **options)
            assert answer.status_code == 200, answer.text
            answers[runtime] = answer.json()
    close_enough(answers["onnxruntime"], answers["tensorflow"])
