"""RFC 8414 metadata at /.well-known/oauth-authorization-server, as authlib reads it."""

from __future__ import annotations

import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from pydantic import ValidationError

from auth_service.settings import GATEWAY_SCOPES, AuthSettings

from .conftest import Deployment, ServerFactory

PATH = "/.well-known/oauth-authorization-server"


def test_authlib_validates_the_metadata_of_an_https_issuer(start_server: ServerFactory) -> None:
    server = start_server(AUTH_ISSUER="https://gateway.example/")
    with server.http() as http:
        response = http.get(PATH)  # public: no credentials
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    metadata = AuthorizationServerMetadata(response.json())
    metadata.validate()  # raises on any RFC 8414 violation (https everywhere, required fields)
    assert metadata["issuer"] == "https://gateway.example"
    assert metadata["token_endpoint"] == "https://gateway.example/oauth2/token"
    assert metadata["introspection_endpoint"] == "https://gateway.example/oauth2/introspect"
    assert metadata["revocation_endpoint"] == "https://gateway.example/oauth2/revoke"
    assert metadata["grant_types_supported"] == ["client_credentials"]
    for endpoint in ("token", "introspection", "revocation"):
        assert metadata[f"{endpoint}_endpoint_auth_methods_supported"] == [
            "client_secret_basic",
            "client_secret_post",
        ]
    assert "models:admin" in metadata["scopes_supported"]


def test_the_default_issuer_is_the_gateway_and_its_endpoints_work(
    deployment: Deployment,
) -> None:
    document = deployment.http.get(PATH).json()
    assert document["issuer"] == "http://localhost:8080"
    assert document["scopes_supported"] == list(GATEWAY_SCOPES)
    metadata = AuthorizationServerMetadata(document)
    # Everything but the https rule, which a development gateway on plain HTTP can't meet.
    metadata.validate_token_endpoint_auth_methods_supported()
    metadata.validate_scopes_supported()
    metadata.validate_response_types_supported()
    metadata.validate_grant_types_supported()
    # The advertised endpoints are this service's own paths.
    path = document["token_endpoint"].removeprefix(document["issuer"])
    response = deployment.http.post(
        path, data={"grant_type": "client_credentials"}, auth=deployment.other.basic
    )
    assert response.status_code == 200


def test_models_admin_is_a_scope_but_not_the_bootstrap_clients_by_default() -> None:
    assert "models:admin" in GATEWAY_SCOPES
    assert "models:admin" not in AuthSettings().bootstrap_scopes


def test_infer_any_is_a_scope_but_the_bootstrap_client_gets_the_shipped_models_by_name() -> None:
    assert {"infer:*", "infer:vae", "infer:classifier", "infer:detector"} <= set(GATEWAY_SCOPES)
    bootstrap = AuthSettings().bootstrap_scopes
    assert "infer:*" not in bootstrap and "infer:classifier" in bootstrap


@pytest.mark.parametrize(
    "issuer",
    [
        "gateway.example",
        "ftp://gateway.example",
        "https://",
        "https://gateway.example?x=1",
        "https://gateway.example/#top",
        "https://user@gateway.example",
        "https://gateway.example:99999",
        "https://gate way.example",
    ],
)
def test_an_issuer_that_is_no_base_url_is_refused(issuer: str) -> None:
    with pytest.raises(ValidationError, match="AUTH_ISSUER must be"):
        AuthSettings(issuer=issuer)
