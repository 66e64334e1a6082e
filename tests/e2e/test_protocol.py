"""The Open Inference Protocol through the gateway: `tritonclient` with a bearer token, and
the scopes by model and method (docs/gateway.md, "Routes")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from modelkit import load_model
from modelkit.__main__ import main
from tests.conftest import MODELS_DIR
from tests.e2e.stack import PROJECT_ROOT, Stack, wait_until
from tests.test_importer import WEIGHTS, onnx_file

pytestmark = pytest.mark.slow

LATENT = {"name": "latent", "datatype": "FP32", "shape": [1, 2], "data": [0.0, 0.5]}
TEXT = {"name": "text", "datatype": "BYTES", "shape": [1], "data": ["Striker scores twice."]}


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def tokens(gateway: Stack) -> dict[str, str]:
    gateway.add_client("infer-vae", "infer:vae")
    gateway.add_client("infer-any", "infer:*,models:read")
    return {
        "full": gateway.token("full"),
        "infer-vae": gateway.token("infer-vae"),
        "infer-any": gateway.token("infer-any"),
        "read": gateway.token("full", "models:read"),
    }


@pytest.fixture
def client(gateway: Stack) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(gateway.url.removeprefix("http://")) as connection:
        yield connection


def test_health_is_public_and_the_rest_needs_a_token(gateway: Stack, client) -> None:
    assert client.is_server_live() and client.is_server_ready()  # no token
    for path in ("/v2", "/v2/models/vae", "/v2/models/vae/ready"):
        response = httpx.get(gateway.url + path)
        assert response.status_code == 401 and response.json()["error"] == "missing_token"
    response = httpx.post(gateway.url + "/v2/models/vae/infer", json={"inputs": [LATENT]})
    assert response.status_code == 401


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_infers_through_the_gateway(client, tokens, binary: bool) -> None:
    headers = _bearer(tokens["full"])
    assert client.get_model_metadata("vae", headers=headers)["name"] == "vae"
    assert client.is_model_ready("classifier", headers=headers)
    latents = np.array([[0.0, 0.5], [-1.0, 1.0]], np.float32)
    latent = triton.InferInput("latent", [2, 2], "FP32")
    latent.set_data_from_numpy(latents, binary_data=binary)
    result = client.infer(
        "vae",
        [latent],
        outputs=[triton.InferRequestedOutput("image", binary_data=binary)],
        headers=headers,
    )
    expected = load_model(MODELS_DIR, "vae").predict(latents)
    np.testing.assert_allclose(result.as_numpy("image"), expected, atol=1e-6)
    text = triton.InferInput("text", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"The bank raised rates."], dtype=object), binary)
    labels = client.infer("classifier", [text], headers=headers).as_numpy("label")
    assert labels.shape == (1,)
    image = triton.InferInput("image", [1, 48, 64, 3], "FP32")
    image.set_data_from_numpy(np.full((1, 48, 64, 3), 200, np.float32), binary_data=binary)
    found = client.infer("detector", [image], headers=headers)
    assert found.as_numpy("num_detections").shape == (1,)


def test_infer_scope_names_the_model_in_the_path(gateway: Stack, tokens) -> None:
    vae_only = _bearer(tokens["infer-vae"])
    ok = httpx.post(
        gateway.url + "/v2/models/vae/infer", json={"inputs": [LATENT]}, headers=vae_only
    )
    assert ok.status_code == 200, ok.text
    version = ok.json()["model_version"]
    pinned = httpx.post(
        f"{gateway.url}/v2/models/vae/versions/{version}/infer",
        json={"inputs": [LATENT]},
        headers=vae_only,
    )
    assert pinned.status_code == 200
    other = httpx.post(
        gateway.url + "/v2/models/classifier/infer", json={"inputs": [TEXT]}, headers=vae_only
    )
    assert other.status_code == 403 and other.json()["error"] == "insufficient_scope"
    assert "infer:classifier" in other.json()["detail"]
    # Metadata needs models:read, which an infer-only token lacks.
    assert httpx.get(gateway.url + "/v2/models/vae", headers=vae_only).status_code == 403
    # Any other method on the protocol's paths needs models:admin.
    assert httpx.post(gateway.url + "/v2/models/vae", headers=vae_only).status_code == 403
    assert httpx.put(gateway.url + "/v2/models/vae/infer", headers=vae_only).status_code == 403


def test_the_wildcard_infer_scope_covers_every_model(gateway: Stack, tokens) -> None:
    headers = _bearer(tokens["infer-any"])
    for path, body in (("vae", LATENT), ("classifier", TEXT)):
        response = httpx.post(
            f"{gateway.url}/v2/models/{path}/infer", json={"inputs": [body]}, headers=headers
        )
        assert response.status_code == 200, response.text
    # A client holding infer:* may ask for a token narrowed to one model.
    narrowed = gateway.token("infer-any", "infer:vae")
    response = httpx.post(
        gateway.url + "/v2/models/classifier/infer",
        json={"inputs": [TEXT]},
        headers=_bearer(narrowed),
    )
    assert response.status_code == 403


def test_protocol_errors_come_back_through_the_gateway(client, tokens) -> None:
    wrong = triton.InferInput("latent", [1, 3], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 3), np.float32))
    with pytest.raises(InferenceServerException, match=r"shape \[1, 3\]"):
        client.infer("vae", [wrong], headers=_bearer(tokens["full"]))


def test_the_documented_tritonclient_example_runs(gateway: Stack, tokens) -> None:
    """The python block of docs/app.md marked `executed: tests/e2e/test_protocol.py`."""
    text = (PROJECT_ROOT / "docs" / "app.md").read_text()
    marker = "<!-- executed: tests/e2e/test_protocol.py -->\n```python\n"
    block = text.split(marker, 1)[1].split("```", 1)[0]
    namespace = {"gateway": gateway.url.removeprefix("http://"), "token": tokens["infer-vae"]}
    exec(compile(block, "docs/app.md", "exec"), namespace)
    assert namespace["images"].shape == (2, 28, 28)


@pytest.fixture(scope="module")
def own_models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    """A gateway over a repository holding only a model of the user's own, imported with
    `python -m modelkit import`, polled every 0.2 s for more."""
    from tests.e2e.conftest import running_stack

    base = tmp_path_factory.mktemp("own-models")
    models = base / "models"
    source = onnx_file(base / "own.onnx")
    main(["import", str(source), "--name", "own", "--labels", "a,b,c", "--out", str(models)])
    env = {"APP_MODELS_DIR": str(models), "APP_POLL_INTERVAL_S": "0.2"}
    for stack in running_stack(base, extra_env=env):
        stack.add_client("own-user", "infer:own")
        stack.add_client("other-user", "infer:vae,models:read")
        yield stack, models


def test_an_imported_model_is_served_behind_its_own_scope(own_models) -> None:
    stack, _ = own_models
    rows = np.ones((2, 4), np.float32)
    body = {
        "inputs": [
            {"name": "x", "datatype": "FP32", "shape": [2, 4], "data": rows.ravel().tolist()}
        ]
    }
    allowed = httpx.post(
        stack.url + "/v2/models/own/infer", json=body, headers=_bearer(stack.token("own-user"))
    )
    assert allowed.status_code == 200, allowed.text
    outputs = {o["name"]: o for o in allowed.json()["outputs"]}
    np.testing.assert_allclose(
        np.array(outputs["y"]["data"]).reshape(2, 3), rows @ WEIGHTS, rtol=1e-6
    )
    assert outputs["best"]["datatype"] == "INT64" and outputs["best"]["data"] == [2, 2]
    refused = httpx.post(
        stack.url + "/v2/models/own/infer", json=body, headers=_bearer(stack.token("other-user"))
    )
    assert refused.status_code == 403 and "infer:own" in refused.json()["detail"]


def test_a_model_imported_while_serving_is_picked_up_without_a_restart(own_models) -> None:
    stack, models = own_models
    main(["import", str(onnx_file(models.parent / "later.onnx")), "--name", "later",
          "--out", str(models)])  # fmt: skip
    stack.add_client("later-user", "infer:later,models:read")
    headers = _bearer(stack.token("later-user"))
    assert wait_until(
        lambda: httpx.get(stack.url + "/v2/models/later/ready", headers=headers).status_code == 200,
        15,
    )
    meta = httpx.get(stack.url + "/v2/models/later", headers=headers).json()
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert [o["name"] for o in meta["outputs"]] == ["y", "best"]
