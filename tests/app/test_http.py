"""The HTTP shell: request ids, access log, body limit, error shape, metrics and OpenAPI."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.logging import JsonFormatter
from app.settings import Settings
from tests.app.conftest import serving
from tests.app.toy import TOY, publish_toy

pytestmark = pytest.mark.anyio

ROUTES = {
    ("post", "/detect"),
    ("get", "/vae/sample"),
    ("post", "/vae/decode"),
    ("post", "/classify"),
    ("get", "/v1/models"),
    ("get", "/v1/models/{name}"),
    ("post", "/v1/models/{name}/reload"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/v2"),
    ("get", "/v2/health/live"),
    ("get", "/v2/health/ready"),
    ("get", "/v2/models/{name}"),
    ("get", "/v2/models/{name}/versions/{version}"),
    ("get", "/v2/models/{name}/config"),
    ("get", "/v2/models/{name}/versions/{version}/config"),
    ("get", "/v2/models/{name}/ready"),
    ("get", "/v2/models/{name}/versions/{version}/ready"),
    ("post", "/v2/models/{name}/infer"),
    ("post", "/v2/models/{name}/versions/{version}/infer"),
}


def settings_for(root: Path, **overrides: object) -> Settings:
    publish_toy(root, seed=1)
    values: dict[str, object] = {"models_dir": root, "models": [TOY], "poll_interval_s": 0}
    values.update(overrides)
    return Settings(**values)


def access_lines(records: list[logging.LogRecord]) -> list[dict[str, object]]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in records if r.name == "app.access"]


async def test_request_id_is_echoed_or_made_and_the_access_line_is_json(
    tmp_path: Path, app_logs: list[logging.LogRecord]
) -> None:
    async with serving(settings_for(tmp_path)) as (client, _):
        given = await client.get(
            "/healthz",
            headers={"X-Request-Id": "req-42", "X-Client-Id": "svc-a", "X-Scopes": "vae:sample"},
        )
        made = await client.get("/healthz")
        hostile = await client.get("/healthz", headers={"X-Request-Id": "a\tb" + "x" * 300})
    assert given.headers["x-request-id"] == "req-42"
    assert len(made.headers["x-request-id"]) == 32
    assert hostile.headers["x-request-id"] not in ("", "a\tb" + "x" * 300)
    first = access_lines(app_logs)[0]
    assert first["request_id"] == "req-42"
    assert first["client_id"] == "svc-a"
    assert (first["method"], first["path"], first["status"]) == ("GET", "/healthz", 200)
    assert isinstance(first["latency_ms"], float)
    assert {"time", "model", "version", "batch_size"} <= set(first)


async def test_access_line_holds_no_body_query_or_token(
    tmp_path: Path, app_logs: list[logging.LogRecord]
) -> None:
    async with serving(settings_for(tmp_path)) as (client, _):
        await client.post(
            "/classify?secret=query-value",
            json={"text": "   "},
            headers={"Authorization": "Bearer tok-SECRET"},
        )
    line = json.dumps(access_lines(app_logs))
    assert "tok-SECRET" not in line and "query-value" not in line and "   " not in line
    assert access_lines(app_logs)[0]["status"] == 422


async def test_a_body_above_the_limit_is_refused_with_413(tmp_path: Path) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"x" * 1000

    async with serving(settings_for(tmp_path, max_body_bytes=4000)) as (client, _):
        declared = await client.post("/classify", content=b"{" + b" " * 5000 + b"}")
        streamed = await client.post(
            "/classify", content=chunks(), headers={"Content-Type": "application/json"}
        )
        within = await client.post("/classify", json={"text": "short"})
    for answer in (declared, streamed):
        assert answer.status_code == 413
        assert answer.json() == {
            "error": "body_too_large",
            "detail": "The request body is larger than 4000 bytes.",
        }
    assert within.status_code != 413


async def test_errors_are_json_with_a_code_and_a_sentence(tmp_path: Path) -> None:
    async with serving(settings_for(tmp_path)) as (client, _):
        missing_route = await client.get("/nowhere")
        wrong_method = await client.delete("/healthz")
        bad_json = await client.post(
            "/classify", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        wrong_type = await client.post("/classify", json={"text": 12})
        unknown_model = await client.get("/v1/models/nope")
        unknown_reload = await client.post("/v1/models/nope/reload")
    assert (missing_route.status_code, missing_route.json()["error"]) == (404, "not_found")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method_not_allowed")
    assert (bad_json.status_code, bad_json.json()["error"]) == (422, "invalid_request")
    assert wrong_type.status_code == 422 and "text" in wrong_type.json()["detail"]
    for answer in (unknown_model, unknown_reload):
        assert answer.status_code == 404
        assert answer.json()["error"] == "model_not_found"
        assert set(answer.json()) == {"error", "detail"}


async def test_metrics_count_requests_by_route_and_status(tmp_path: Path) -> None:
    async with serving(settings_for(tmp_path)) as (client, _):
        for _ in range(3):
            await client.get("/healthz")
        await client.get("/v1/models/nope")
        text = (await client.get("/metrics")).text
    assert 'app_http_requests_total{method="GET",route="/healthz",status="200"} 3.0' in text
    assert (
        'app_http_requests_total{method="GET",route="/v1/models/{name}",status="404"} 1.0' in text
    )
    assert 'app_http_request_duration_seconds_count{method="GET",route="/healthz"' in text
    assert 'app_model_version{model="toy"} 1.0' in text
    # Model state, one series per state, and the process's own figures.
    assert 'app_model_state{model="toy",state="AVAILABLE"} 1.0' in text
    assert 'app_model_state{model="toy",state="LOADING"} 0.0' in text
    assert 'app_model_refused_versions{model="toy"} 0.0' in text
    assert re.search(r'^app_inference_queue_capacity\{model="toy"\} [1-9]', text, re.MULTILINE)
    assert "process_resident_memory_bytes " in text
    assert "python_gc_collections_total" in text


async def test_openapi_documents_every_route_with_an_example(tmp_path: Path) -> None:
    async with serving(settings_for(tmp_path)) as (client, _):
        spec = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
    assert docs.status_code == 404  # the gateway serves /docs, with no CDN (gateway/openapi.py)
    operations = {
        (method, path): operation
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    }
    assert set(operations) == ROUTES
    for (method, path), operation in operations.items():
        text = json.dumps(operation)
        has_example = '"example"' in text or '"examples"' in text
        if not has_example and "requestBody" in operation:
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            has_example = '"examples"' in json.dumps(
                spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
            )
        assert has_example, f"{method.upper()} {path} has no example"


async def test_the_heap_is_settled_once_the_models_are_loaded(tmp_path: Path) -> None:
    """Startup objects go to the permanent generation and young collections are rarer: the
    latency tail under load came from the collector (app/main.py `settle_heap`)."""
    import gc

    from app.main import GC_YOUNG_THRESHOLD

    gc.unfreeze()
    default = gc.get_threshold()
    try:
        gc.set_threshold(700, *default[1:])
        async with serving(settings_for(tmp_path)) as (client, _):
            assert (await client.get(f"/v1/models/{TOY}")).status_code == 200
            assert gc.get_freeze_count() > 0
            assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*default)
