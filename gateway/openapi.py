"""The gateway's OpenAPI document: one description of everything a client can call through it.

The app and the auth service each describe their own routes (FastAPI). The gateway routes a
subset of them (nginx/nginx.conf), asks the auth service for a scope on each protected one and
answers some errors itself. This module merges the two descriptions, keeps only the operations
nginx routes (the app's /metrics, for one, is not reachable), and declares the OAuth2
client-credentials scheme with the scope of every operation, so that Swagger UI's "Authorize"
works and a generated client knows what to ask for.

    python -m gateway.openapi                      # the document, on stdout
    python -m gateway.openapi --swagger-ui-assets  # where Swagger UI's files are installed
    python -m gateway.openapi --out FILE           # both at once: the document into FILE,
                                                   # the assets' directory on stdout

scripts/gateway-exec writes the document into the run directory at start, where nginx serves
it as /openapi.json; it is made from the routers alone, without an app or a model. The scope
rules here mirror nginx/nginx.conf; tests/e2e/test_docs_ui.py checks each operation's scope
against the one nginx logs for a real request.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

__all__ = ["OAUTH2", "build", "operation_scope", "swagger_ui_assets"]

TITLE = "Model gateway"
OAUTH2 = "oauth2"  # the security scheme of every protected operation
CLIENT_BASIC = "clientBasic"  # HTTP Basic client authentication at the OAuth2 endpoints
TOKEN_URL = "/oauth2/token"  # relative: the gateway's own, over whichever scheme serves /docs
SCOPE_EXTENSION = "x-gateway-scope"  # the scope nginx asks for, as a template ({name})
PUBLIC = ""  # operation_scope's answer for a route nginx serves without a token

DESCRIPTION = """
Every route of the gateway: the models (served by the inference app behind it) and the OAuth2
authorization server. A model route needs a bearer token with the route's scope: get one with
the client-credentials grant at `/oauth2/token` ("Authorize" above, with a client id and
secret), e.g. `curl -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=client_credentials
/oauth2/token`. Errors are `{"error": "<code>", "detail": "<sentence>"}`; the OAuth2
endpoints answer RFC 6749's `{"error", "error_description"}`.
"""

# What each scope grants, for the "Authorize" dialog (auth_service.settings.GATEWAY_SCOPES are
# the scopes the gateway asks for; a scope missing here is described generically).
SCOPE_DESCRIPTIONS = {
    "detect": "POST /detect",
    "vae": "GET /vae/sample, POST /vae/decode",
    "classify": "POST /classify",
    "models:read": "model metadata and readiness (/v1/models, /v2/models)",
    "models:admin": "reload a model (POST /v1/models/{name}/reload)",
    "infer:*": "Open Inference Protocol inference on every model, later ones included",
}

# Public app routes: nginx serves them without a token (its own /healthz, the readiness
# checks of both upstreams, the protocol's liveness and readiness).
PUBLIC_APP_PATHS = frozenset({"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready"})
# The auth service's routes that nginx passes on (public: they authenticate the client).
AUTH_PATHS = frozenset(
    {
        "/oauth2/token",
        "/oauth2/introspect",
        "/oauth2/revoke",
        "/.well-known/oauth-authorization-server",
    }
)
_READ_METHODS = frozenset({"get", "head"})
_INFER = re.compile(r"^/v2/models/\{name\}(/versions/\{version\})?/infer$")

_GATEWAY_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds."}}
# The answers nginx gives on a protected route before (or instead of) the app's.
_GATEWAY_RESPONSES: dict[str, dict[str, Any]] = {
    "401": {
        "description": "No token, or an invalid, expired or revoked one (missing_token, "
        "invalid_token; WWW-Authenticate says which).",
    },
    "403": {"description": "The token lacks the route's scope (insufficient_scope)."},
    "503": {
        "description": "The auth service or the app is unavailable (auth_unavailable, "
        "upstream_unavailable), or the model is not ready: retry after Retry-After.",
        "headers": _RETRY_AFTER,
    },
}


class DocumentError(ValueError):
    """The two services' descriptions cannot be merged (e.g. one schema name, two schemas)."""


def _task_locations() -> list[tuple[str, str]]:
    """(nginx location, scope) of every task route (app/tasks.py declarations)."""
    from app.tasks import discover

    return [(location, task.scope) for task in discover() for location in task.locations]


def _location_matches(location: str, path: str) -> bool:
    if location.startswith("= "):
        return path == location[2:]
    return path.startswith(location)


def operation_scope(
    path: str, method: str, task_locations: Sequence[tuple[str, str]]
) -> str | None:
    """The scope nginx asks for on `method path` (an OpenAPI path template), PUBLIC for a route
    it serves without a token, or None for one it does not route to the app at all."""
    method = method.lower()
    if path in PUBLIC_APP_PATHS:
        return PUBLIC
    for location, scope in task_locations:
        if _location_matches(location, path):
            return scope
    if path.startswith("/v1/models"):
        return "models:read" if method in _READ_METHODS else "models:admin"
    if _INFER.match(path):
        return "infer:{name}" if method == "post" else "models:admin"
    if path == "/v2" or path.startswith("/v2/"):
        return "models:read" if method in _READ_METHODS else "models:admin"
    return None


def _document(routes: Iterable[Any], title: str, version: str, description: str) -> dict[str, Any]:
    return get_openapi(
        title=title,
        version=version,
        description=description,
        routes=[route for route in routes if isinstance(route, APIRoute)],
    )


def app_document() -> dict[str, Any]:
    """The app's own description, as its /openapi.json would serve it."""
    from app.api import DESCRIPTION as APP_DESCRIPTION
    from app.api import TITLE as APP_TITLE
    from app.api import VERSION, routers
    from app.tasks import discover

    routes = [route for router in routers(discover()) for route in router.routes]
    return _document(routes, APP_TITLE, VERSION, APP_DESCRIPTION)


def auth_document() -> dict[str, Any]:
    """The auth service's public routes (the OAuth2 endpoints and RFC 8414 metadata)."""
    from auth_service.routes import metadata, oauth

    routes = [*oauth.router.routes, *metadata.router.routes]
    return _document(routes, "Authorization server", "", "")


def _gateway_scopes() -> list[str]:
    from auth_service.settings import GATEWAY_SCOPES

    return list(GATEWAY_SCOPES)


def _merge_schemas(target: dict[str, Any], source: dict[str, Any], origin: str) -> None:
    for name, schema in source.items():
        if name in target and target[name] != schema:
            raise DocumentError(f"schema {name!r} differs between the app and the {origin}")
        target[name] = schema


def _protect(operation: dict[str, Any], scope: str) -> None:
    """Declares the operation's scope and the gateway's own errors on it."""
    if scope.startswith("infer:"):
        # No scope can name every model: infer:* stands for the alternatives, and the
        # description and the extension say which one nginx asks for.
        requirement = ["infer:*"]
        note = "Needs a token with scope `infer:<name>` (the model in the path) or `infer:*`."
    else:
        requirement = [scope]
        note = f"Needs a token with scope `{scope}`."
    operation["security"] = [{OAUTH2: requirement}]
    operation[SCOPE_EXTENSION] = scope
    operation["description"] = f"{operation.get('description', '').rstrip()}\n\n{note}".strip()
    responses = operation.setdefault("responses", {})
    for status, answer in _GATEWAY_RESPONSES.items():
        if status not in responses:
            responses[status] = {
                **answer,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/GatewayError"}}
                },
            }


def build() -> dict[str, Any]:
    """The gateway's document: the routed operations of both services, with their scopes."""
    app = app_document()
    auth = auth_document()
    locations = _task_locations()
    paths: dict[str, Any] = {}
    for path, item in app["paths"].items():
        kept = {}
        for method, operation in item.items():
            scope = operation_scope(path, method, locations)
            if scope is None:
                continue  # not routed to the app by nginx
            operation = copy.deepcopy(operation)
            if scope == PUBLIC:
                operation["security"] = []
            else:
                _protect(operation, scope)
            kept[method] = operation
        if kept:
            paths[path] = kept
    for path, item in auth["paths"].items():
        if path not in AUTH_PATHS:
            continue
        for operation in item.values():
            # RFC 6749 §2.3.1: HTTP Basic, or client_id and client_secret in the form.
            is_metadata = path.startswith("/.well-known/")
            operation["security"] = [] if is_metadata else [{CLIENT_BASIC: []}, {}]
            operation.setdefault("tags", ["oauth2"])
        paths[path] = item

    schemas: dict[str, Any] = {}
    _merge_schemas(schemas, app.get("components", {}).get("schemas", {}), "app")
    _merge_schemas(schemas, auth.get("components", {}).get("schemas", {}), "auth service")
    _merge_schemas(schemas, {"GatewayError": _GATEWAY_ERROR}, "gateway")
    scopes = {
        scope: SCOPE_DESCRIPTIONS.get(scope)
        or (
            f"Open Inference Protocol inference on {scope[6:]}"
            if scope.startswith("infer:")
            else scope
        )
        for scope in _gateway_scopes()
    }
    return {
        "openapi": app["openapi"],
        "info": {"title": TITLE, "version": app["info"]["version"], "description": DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                OAUTH2: {
                    "type": "oauth2",
                    "description": "OAuth2 client credentials: a client id and secret from "
                    "`python -m auth_service clients create` (docs/auth.md).",
                    "flows": {"clientCredentials": {"tokenUrl": TOKEN_URL, "scopes": scopes}},
                },
                CLIENT_BASIC: {
                    "type": "http",
                    "scheme": "basic",
                    "description": "Client id and secret, at the OAuth2 endpoints only.",
                },
            },
        },
        "tags": [
            {"name": "oauth2", "description": "The authorization server (docs/auth.md)."},
        ],
    }


def swagger_ui_assets() -> Path:
    """The directory of Swagger UI's files in the installed swagger-ui-py package (found
    without importing it: its handlers pull in web frameworks)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the swagger-ui-py package is not installed")
    static = Path(next(iter(spec.submodule_search_locations))) / "static"
    if not (static / "swagger-ui-bundle.js").is_file():
        raise FileNotFoundError(f"no swagger-ui-bundle.js in {static}")
    return static


def write_document(path: Path) -> None:
    """The document into ``path``, replaced in one rename, and only when it changed (nginx's
    workers may be reading the old one)."""
    text = json.dumps(build(), indent=1) + "\n"
    if path.is_file() and path.read_text() == text:
        return
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.openapi", description=__doc__)
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--swagger-ui-assets",
        action="store_true",
        help="print the directory of Swagger UI's installed files instead",
    )
    what.add_argument(
        "--out",
        type=Path,
        help="write the document into this file and print the assets' directory (one Python"
        " start for both, as scripts/gateway-exec needs them)",
    )
    args = parser.parse_args(argv)
    if args.swagger_ui_assets or args.out:
        try:
            assets = swagger_ui_assets()
        except FileNotFoundError as error:
            print(f"gateway.openapi: {error}", file=sys.stderr)
            return 1
        if args.out:
            write_document(args.out)
        print(assets)
        return 0
    json.dump(build(), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
