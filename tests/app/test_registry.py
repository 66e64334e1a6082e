"""Loading, pinning, hot reload and refusal of broken versions, on throwaway toy models."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from app.settings import ModelOptions, Settings
from tests.app.conftest import serving
from tests.app.toy import FEATURES, TOY, publish_broken_toy, publish_toy, toy_weights

pytestmark = pytest.mark.anyio

ONES = np.ones((2, FEATURES), dtype=np.float32)


def toy_settings(root: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"models_dir": root, "models": [TOY], "poll_interval_s": 0}
    values.update(overrides)
    return Settings(**values)


def expected(seed: int) -> np.ndarray:
    return ONES @ toy_weights(seed)


async def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_serves_the_latest_version_after_verify_and_warm_up(tmp_path: Path) -> None:
    publish_toy(tmp_path, seed=1)
    publish_toy(tmp_path, seed=2)
    async with serving(toy_settings(tmp_path)) as (client, app):
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"ready": True, "models": {TOY: "AVAILABLE"}}
        servable = app.state.registry.current(TOY)
        assert servable.version == 2
        np.testing.assert_allclose(await servable.infer(ONES), expected(2), rtol=1e-5)
        status = (await client.get(f"/v1/models/{TOY}")).json()
    assert status["version"] == 2
    assert status["runtime"] == "onnxruntime"
    assert status["labels"] == ["a", "b", "c"]
    assert status["metrics"] == {"seed": 2}
    assert status["signature"]["inputs"][0]["shape"] == [None, FEATURES]
    assert [(v["version"], v["state"]) for v in status["versions"]] == [
        (1, "ON_DISK"),
        (2, "AVAILABLE"),
    ]


async def test_a_pinned_version_is_served_instead_of_the_latest(tmp_path: Path) -> None:
    publish_toy(tmp_path, seed=1)
    publish_toy(tmp_path, seed=2)
    settings = toy_settings(tmp_path, model_settings={TOY: ModelOptions(version=1)})
    async with serving(settings) as (client, app):
        assert app.state.registry.current(TOY).version == 1
        listing = (await client.get("/v1/models")).json()
    assert [(m["name"], m["version"], m["pinned_version"]) for m in listing["models"]] == [
        (TOY, 1, 1)
    ]


async def test_a_model_without_versions_is_not_ready_and_answers_503(tmp_path: Path) -> None:
    async with serving(toy_settings(tmp_path)) as (client, app):
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["models"] == {TOY: "UNAVAILABLE"}
        assert (await client.get("/v1/models/elsewhere")).json()["error"] == "model_not_found"
        with pytest.raises(Exception, match="not loaded yet") as unavailable:
            async with app.state.registry.acquire(TOY):
                pass
    assert unavailable.value.status_code == 503


async def test_reload_endpoint_swaps_and_in_flight_requests_finish_on_the_old_version(
    tmp_path: Path,
) -> None:
    publish_toy(tmp_path, seed=1)
    async with serving(toy_settings(tmp_path)) as (client, app):
        registry = app.state.registry
        unchanged = await client.post(f"/v1/models/{TOY}/reload")
        assert unchanged.json() == {
            "name": TOY,
            "version": 1,
            "previous_version": 1,
            "changed": False,
        }
        async with registry.acquire(TOY) as old:
            publish_toy(tmp_path, seed=2)
            reloaded = await client.post(f"/v1/models/{TOY}/reload")
            assert reloaded.status_code == 200
            assert reloaded.json()["version"] == 2 and reloaded.json()["changed"]
            # The request that started on version 1 still computes with version 1.
            np.testing.assert_allclose(await old.infer(ONES), expected(1), rtol=1e-5)
            assert old.retired
        new = registry.current(TOY)
        assert new.version == 2
        np.testing.assert_allclose(await new.infer(ONES), expected(2), rtol=1e-5)
        metrics = (await client.get("/metrics")).text
    assert 'app_model_version{model="toy"} 2.0' in metrics


async def test_a_broken_version_is_refused_and_the_old_one_keeps_serving(
    tmp_path: Path, app_logs: list[logging.LogRecord]
) -> None:
    publish_toy(tmp_path, seed=1)
    async with serving(toy_settings(tmp_path)) as (client, app):
        publish_broken_toy(tmp_path)
        refused = await client.post(f"/v1/models/{TOY}/reload")
        assert refused.status_code == 409
        assert refused.json()["error"] == "version_refused"
        assert "ArtifactIntegrityError" in refused.json()["detail"]
        servable = app.state.registry.current(TOY)
        assert servable.version == 1
        np.testing.assert_allclose(await servable.infer(ONES), expected(1), rtol=1e-5)
        status = (await client.get(f"/v1/models/{TOY}")).json()
        assert (await client.get("/readyz")).status_code == 200
    assert status["state"] == "AVAILABLE"
    assert [(v["version"], v["state"]) for v in status["versions"]] == [
        (1, "AVAILABLE"),
        (2, "REFUSED"),
    ]
    assert "sha256" in status["versions"][1]["status"]["error_message"]
    errors = [r for r in app_logs if r.levelno == logging.ERROR and r.name == "app.registry"]
    assert len(errors) == 1 and errors[0].version == 2


async def test_a_version_that_fails_its_warm_up_is_refused(tmp_path: Path) -> None:
    publish_toy(tmp_path, seed=1)
    publish_toy(tmp_path, seed=2, declared_features=FEATURES + 1)
    async with serving(toy_settings(tmp_path)) as (client, _app):
        assert (await client.get("/readyz")).status_code == 503
        status = (await client.get(f"/v1/models/{TOY}")).json()
    assert status["state"] == "UNAVAILABLE"
    assert "version 2 refused" in status["last_error"]


async def test_polling_picks_up_new_versions_and_does_not_retry_refused_ones(
    tmp_path: Path, app_logs: list[logging.LogRecord]
) -> None:
    async with serving(toy_settings(tmp_path, poll_interval_s=0.05)) as (_client, app):
        registry = app.state.registry
        assert not registry.is_ready()
        publish_toy(tmp_path, seed=1)
        await wait_until(registry.is_ready)
        assert registry.current(TOY).version == 1
        publish_toy(tmp_path, seed=2)
        await wait_until(lambda: registry.current(TOY).version == 2)
        np.testing.assert_allclose(await registry.current(TOY).infer(ONES), expected(2), rtol=1e-5)
        publish_broken_toy(tmp_path)
        await wait_until(lambda: "version 3" in (registry.describe(TOY)["last_error"] or ""))
        await asyncio.sleep(0.3)  # several more polls
        assert registry.current(TOY).version == 2
    refusals = [r for r in app_logs if r.name == "app.registry" and r.levelno == logging.ERROR]
    assert len(refusals) == 1, "a refused version is not reloaded on every poll"


async def test_metrics_merged_into_metadata_after_publishing_are_shown(tmp_path: Path) -> None:
    path = publish_toy(tmp_path, seed=1)
    async with serving(toy_settings(tmp_path)) as (client, _):
        metadata = json.loads((path / "metadata.json").read_text())
        metadata["metrics"]["evaluation"] = {"accuracy": 0.5}
        (path / "metadata.json").write_text(json.dumps(metadata))
        status = (await client.get(f"/v1/models/{TOY}")).json()
        assert (await client.post(f"/v1/models/{TOY}/reload")).json()["changed"] is False
    assert status["metrics"] == {"seed": 1, "evaluation": {"accuracy": 0.5}}


async def test_unset_models_serve_the_whole_repository_and_models_added_later(
    tmp_path: Path,
) -> None:
    publish_toy(tmp_path, seed=1)
    settings = Settings(models_dir=tmp_path, poll_interval_s=0.05)  # APP_MODELS unset
    async with serving(settings) as (client, app):
        registry = app.state.registry
        assert registry.names == [TOY]
        publish_toy(tmp_path, seed=3, name="newcomer")  # dropped in while serving
        await wait_until(
            lambda: registry.current("newcomer") if "newcomer" in registry.names else None
        )
        answer = await client.post(
            "/v2/models/newcomer/infer",
            json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, FEATURES],
                              "data": ONES.ravel().tolist()}]},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        np.testing.assert_allclose(
            np.array(answer.json()["outputs"][0]["data"]).reshape(2, -1), expected(3), rtol=1e-5
        )
        assert (await client.get("/readyz")).json()["models"] == {
            TOY: "AVAILABLE", "newcomer": "AVAILABLE",
        }  # fmt: skip


async def test_a_models_config_file_sets_its_options_under_the_environment(tmp_path: Path) -> None:
    publish_toy(tmp_path, seed=1)
    (tmp_path / TOY / "config.json").write_text(
        json.dumps({"max_batch_size": 5, "max_delay_ms": 0, "version": 1})
    )
    publish_toy(tmp_path, seed=2)
    settings = toy_settings(tmp_path, model_settings={TOY: ModelOptions(max_delay_ms=1.5)})
    async with serving(settings) as (client, _):
        status = (await client.get(f"/v1/models/{TOY}")).json()
    assert status["version"] == 1 and status["pinned_version"] == 1  # pinned by config.json
    assert status["batching"]["max_batch_size"] == 5
    assert status["batching"]["max_delay_ms"] == 1.5  # the environment wins


async def test_a_bad_config_file_keeps_that_model_out_and_the_others_serving(
    tmp_path: Path, app_logs: list[logging.LogRecord]
) -> None:
    publish_toy(tmp_path, seed=1)
    publish_toy(tmp_path, seed=1, name="other")
    (tmp_path / TOY / "config.json").write_text('{"max_batch": 5}')
    async with serving(Settings(models_dir=tmp_path, poll_interval_s=0)) as (client, app):
        status = (await client.get(f"/v1/models/{TOY}")).json()
        assert status["state"] == "UNAVAILABLE" and "config.json" in status["last_error"]
        assert app.state.registry.current("other") is not None
        refused = await client.post(
            f"/v2/models/{TOY}/infer",
            json={"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, FEATURES],
                              "data": [1.0] * FEATURES}]},
        )  # fmt: skip
        assert refused.status_code == 503 and "config.json" in refused.json()["error"]
        assert (await client.get("/readyz")).status_code == 503  # strict readiness, as Triton
    assert any("config.json refused" in r.getMessage() for r in app_logs)


async def test_lone_threads_gives_an_idle_model_a_second_wider_session(tmp_path: Path) -> None:
    """`lone_threads`: a second ONNX Runtime session of the same file with that many threads,
    not spinning, runs a request that finds the model idle; its answers are the same."""
    publish_toy(tmp_path, seed=1)
    options = {TOY: ModelOptions(lone_threads=2)}
    async with serving(toy_settings(tmp_path, model_settings=options)) as (_, app):
        servable = app.state.registry.current(TOY)
        np.testing.assert_allclose(await servable.infer(ONES), expected(1), rtol=1e-5)
        lone = servable.batcher._run_alone.__self__
        assert lone is not servable.model.runtime
        session_options = lone._session.get_session_options()
        assert session_options.intra_op_num_threads == 2
        assert session_options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    async with serving(toy_settings(tmp_path)) as (_, app):  # the default: one session
        servable = app.state.registry.current(TOY)
        assert servable.batcher._run_alone.__self__ is servable.model.runtime
