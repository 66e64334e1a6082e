"""gateway/openapi.py: the gateway's one OpenAPI document, made from the two services' routers.

What nginx does with each operation is checked over the wire in tests/e2e/test_docs_ui.py;
here, the document itself: valid, the app's operations as the app describes them, the scope
rules, and what the start script asks of the module.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from app.main import create_app
from app.settings import Settings
from auth_service.main import create_app as create_auth_app
from auth_service.settings import AuthSettings
from gateway import openapi
from gateway.openapi import PUBLIC, DocumentError, build, operation_scope

LOCATIONS = [("= /classify", "classify"), ("/vae/", "vae")]


@pytest.fixture(scope="module")
def document() -> dict:
    return build()


def test_the_document_and_both_services_own_are_valid_openapi(tmp_path: Path) -> None:
    validate(build())
    validate(create_app(Settings(models_dir=tmp_path)).openapi())
    auth = create_auth_app(AuthSettings(database_path=tmp_path / "auth.sqlite3"))
    validate(auth.openapi())


def test_app_operations_are_the_apps_own_plus_the_gateways_answers(
    document: dict, tmp_path: Path
) -> None:
    served = create_app(Settings(models_dir=tmp_path)).openapi()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path not in served["paths"]:
                continue  # the auth service's
            own = served["paths"][path][method]
            for key in ("operationId", "parameters", "requestBody", "summary", "tags"):
                assert operation.get(key) == own.get(key), (method, path, key)
            for status, answer in own["responses"].items():
                assert operation["responses"][status] == answer, (method, path, status)
    # Every schema a kept operation refers to is in the merged components.
    referred = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(document)))
    assert {"ClassifyAnswer", "GatewayError"} <= referred
    assert referred <= set(document["components"]["schemas"])


def test_only_routed_operations_are_listed(document: dict, tmp_path: Path) -> None:
    served = create_app(Settings(models_dir=tmp_path)).openapi()
    assert "/metrics" in served["paths"] and "/metrics" not in document["paths"]
    assert "/oauth2/check" not in document["paths"]  # nginx's internal /_auth only
    assert document["paths"]["/oauth2/token"]["post"]["security"] == [{"clientBasic": []}, {}]
    assert document["paths"]["/healthz"]["get"]["security"] == []


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("post", "/classify", "classify"),
        ("post", "/classify/extra", None),  # an exact location covers its path only
        ("get", "/vae/sample", "vae"),
        ("get", "/v1/models/{name}", "models:read"),
        ("head", "/v1/models", "models:read"),
        ("post", "/v1/models/{name}/reload", "models:admin"),
        ("post", "/v2/models/{name}/infer", "infer:{name}"),
        ("post", "/v2/models/{name}/versions/{version}/infer", "infer:{name}"),
        ("get", "/v2/models/{name}/infer", "models:admin"),
        ("get", "/v2/models/{name}/ready", "models:read"),
        ("get", "/v2/health/ready", PUBLIC),
        ("get", "/readyz", PUBLIC),
        ("get", "/metrics", None),
    ],
)
def test_operation_scope_mirrors_nginx(method: str, path: str, scope: str | None) -> None:
    assert operation_scope(path, method, LOCATIONS) == scope


def test_protected_operations_declare_scope_and_the_gateways_errors(document: dict) -> None:
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer["security"] == [{"oauth2": ["infer:*"]}]
    assert infer["x-gateway-scope"] == "infer:{name}"
    assert "`infer:<name>`" in infer["description"]
    classify = document["paths"]["/classify"]["post"]
    assert classify["security"] == [{"oauth2": ["classify"]}]
    assert {"401", "403", "503"} <= set(classify["responses"])
    flow = document["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]
    assert flow["tokenUrl"] == "/oauth2/token"
    declared = {
        requirement
        for item in document["paths"].values()
        for operation in item.values()
        for alternative in operation["security"]
        for requirement in alternative.get("oauth2", [])
    }
    assert declared <= set(flow["scopes"])  # every scope asked for can be chosen in "Authorize"


def test_a_schema_name_with_two_meanings_is_refused() -> None:
    target = {"Box": {"type": "object"}}
    openapi._merge_schemas(target, {"Box": {"type": "object"}}, "auth service")  # same: fine
    with pytest.raises(DocumentError, match="Box"):
        openapi._merge_schemas(target, {"Box": {"type": "string"}}, "auth service")


def test_the_command_prints_the_document_and_the_assets_directory(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "gateway.openapi"]
    printed = subprocess.run(run, capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(printed.stdout)["info"]["title"] == openapi.TITLE
    assets = subprocess.run(
        [*run, "--swagger-ui-assets"], capture_output=True, text=True, check=True, timeout=60
    )
    directory = Path(assets.stdout.strip())
    # What scripts/gateway-exec runs: the document into a file, the directory on stdout.
    out = tmp_path / "openapi.json"
    both = subprocess.run(
        [*run, "--out", str(out)], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.read_text()) == json.loads(printed.stdout)
    assert Path(both.stdout.strip()) == directory
    modified = out.stat().st_mtime_ns
    subprocess.run([*run, "--out", str(out)], check=True, timeout=60, capture_output=True)
    assert out.stat().st_mtime_ns == modified  # unchanged: not rewritten
    assert (directory / "swagger-ui-bundle.js").is_file()
    assert (directory / "swagger-ui.css").is_file()
    assert (directory / "LICENSE").is_file()  # Apache-2.0, shipped beside the files
