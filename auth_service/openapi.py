"""OpenAPI declarations of the OAuth endpoints, whose routes parse their forms themselves.

The routes read the raw body (strict urlencoded UTF-8, see `oauth_input`), so FastAPI cannot
infer their request bodies or answers; these dictionaries declare them for `/openapi.json`,
which the reliability tests fuzz through the gateway (tests/reliability/test_fuzz.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import Response

from auth_service.oauth_input import (
    FIELD_LIMITS,
    FORM_CONTENT_TYPE,
    MAX_BODY_BYTES,
    MAX_CLIENT_ID_LENGTH,
)

_OAUTH_ERROR = {
    "type": "object",
    "required": ["error", "error_description"],
    "properties": {
        "error": {
            "type": "string",
            "enum": [
                "invalid_request",
                "invalid_client",
                "unauthorized_client",
                "unsupported_grant_type",
                "invalid_scope",
                "temporarily_unavailable",
            ],
        },
        "error_description": {"type": "string"},
    },
}
# What nginx answers in front of the auth service (docs/gateway.md#errors).
_GATEWAY_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
}
_ERRORS = {
    400: "Malformed request (RFC 6749 §5.2).",
    401: "Client authentication failed.",
    403: "The client may not do this.",
    413: f"Body over {MAX_BODY_BYTES} bytes.",
    429: "Too many failed client authentications (for this client from this address, from this"
    " address, or for this client from unfamiliar addresses), or too many token requests.",
    503: "Every secret-verification thread is busy and the queue is full, or the database"
    " refuses writes: retry after Retry-After seconds.",
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "string"}}}


def _field(name: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "maxLength": FIELD_LIMITS[name], "description": description, **extra}


_CREDENTIAL_FIELDS = {
    # No minLength: an empty parameter counts as omitted (RFC 6749 §3.1), so "client_id="
    # beside HTTP Basic is no second authentication and is accepted.
    "client_id": _field(
        "client_id",
        "Instead of HTTP Basic. An empty value counts as omitted.",
        maxLength=MAX_CLIENT_ID_LENGTH,
    ),
    "client_secret": _field("client_secret", "With client_id, instead of HTTP Basic."),
}


def _form(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {
        "type": "object",
        "properties": {**properties, **_CREDENTIAL_FIELDS},
        "required": required,
    }
    return {"required": True, "content": {FORM_CONTENT_TYPE: {"schema": schema}}}


def _responses(ok: dict[str, Any], *errors: int) -> dict[int | str, dict[str, Any]]:
    responses: dict[int | str, dict[str, Any]] = {200: ok}
    for code in errors:
        # nginx answers 413 above its own limit, 429 above GATEWAY_TOKEN_RATE, and 503 when
        # the auth service cannot be reached.
        gateway_too = code in (413, 429, 503)
        schema = {"anyOf": [_OAUTH_ERROR, _GATEWAY_ERROR]} if gateway_too else _OAUTH_ERROR
        entry: dict[str, Any] = {
            "description": _ERRORS[code],
            "content": {"application/json": {"schema": schema}},
        }
        if code in (429, 503):
            entry["headers"] = _RETRY_AFTER
        responses[code] = entry
    return responses


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_TOKEN_ANSWER = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in", "scope"],
    "properties": {
        "access_token": {"type": "string"},
        "token_type": {"type": "string", "enum": ["Bearer"]},
        "expires_in": {"type": "integer"},
        "scope": {"type": "string"},
    },
}
_INTROSPECTION = {
    "type": "object",
    "required": ["active"],
    "properties": {
        "active": {"type": "boolean"},
        "scope": {"type": "string"},
        "client_id": {"type": "string"},
        "token_type": {"type": "string"},
        "exp": {"type": "integer"},
        "iat": {"type": "integer"},
        "sub": {"type": "string"},
    },
}
_TOKEN_FIELDS = {
    "token": _field("token", "The access token."),
    "token_type_hint": _field("token_type_hint", "Ignored: there are only access tokens."),
}

TOKEN = {
    "summary": "Client credentials grant (RFC 6749 §4.4)",
    "openapi_extra": {
        "requestBody": _form(
            {
                "grant_type": _field(
                    "grant_type", "client_credentials", enum=["client_credentials"]
                ),
                "scope": _field("scope", "Space-separated subset of the client's scopes."),
            },
            ["grant_type"],
        )
    },
    "responses": _responses(_json(_TOKEN_ANSWER, "An access token."), 400, 401, 413, 429, 503),
}
INTROSPECT = {
    "summary": "Token introspection (RFC 7662)",
    "openapi_extra": {"requestBody": _form(_TOKEN_FIELDS, ["token"])},
    "responses": _responses(
        _json(_INTROSPECTION, "The token's state."), 400, 401, 403, 413, 429, 503
    ),
}
REVOKE = {
    "summary": "Token revocation (RFC 7009)",
    "response_class": Response,  # the 200 has no body, hence no media type
    "openapi_extra": {"requestBody": _form(_TOKEN_FIELDS, ["token"])},
    "responses": _responses(
        {"description": "Revoked, already revoked, or unknown; empty body."},
        400,
        401,
        403,
        413,
        429,
        503,
    ),
}

_URL = {"type": "string", "format": "uri"}
_STRINGS = {"type": "array", "items": {"type": "string"}}
_METADATA = {
    "type": "object",
    "required": [
        "issuer",
        "token_endpoint",
        "grant_types_supported",
        "response_types_supported",
        "token_endpoint_auth_methods_supported",
        "scopes_supported",
    ],
    "properties": {
        "issuer": _URL,
        "token_endpoint": _URL,
        "introspection_endpoint": _URL,
        "revocation_endpoint": _URL,
        "grant_types_supported": _STRINGS,
        "response_types_supported": _STRINGS,
        "token_endpoint_auth_methods_supported": _STRINGS,
        "introspection_endpoint_auth_methods_supported": _STRINGS,
        "revocation_endpoint_auth_methods_supported": _STRINGS,
        "scopes_supported": _STRINGS,
    },
}
METADATA = {
    "summary": "Authorization server metadata (RFC 8414)",
    "responses": {200: _json(_METADATA, "Issuer, endpoints, grant types, auth methods, scopes.")},
}
