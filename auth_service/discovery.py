"""RFC 8414 authorization server metadata: what a stock OAuth client needs to find its way."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

METADATA_PATH = "/.well-known/oauth-authorization-server"
TOKEN_PATH = "/oauth2/token"
INTROSPECTION_PATH = "/oauth2/introspect"
REVOCATION_PATH = "/oauth2/revoke"

# What oauth_input.client_credentials really accepts, on every endpoint that authenticates.
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


def authorization_server_metadata(issuer: str, scopes: Iterable[str]) -> dict[str, Any]:
    """The metadata document for ``issuer`` (a base URL without trailing slash)."""
    methods = list(CLIENT_AUTH_METHODS)
    return {
        "issuer": issuer,
        "token_endpoint": issuer + TOKEN_PATH,
        "introspection_endpoint": issuer + INTROSPECTION_PATH,
        "revocation_endpoint": issuer + REVOCATION_PATH,
        "grant_types_supported": ["client_credentials"],
        # REQUIRED by RFC 8414 §2 and non-empty for validating clients (authlib), although
        # there is no authorization endpoint: "none" is the registered response type that
        # issues nothing (OAuth 2.0 Multiple Response Type Encoding Practices §4).
        "response_types_supported": ["none"],
        "token_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "scopes_supported": list(scopes),
    }
