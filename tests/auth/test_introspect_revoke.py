"""POST /oauth2/introspect (RFC 7662) and /oauth2/revoke (RFC 7009) over HTTP."""

from __future__ import annotations

import pytest

from .conftest import Deployment
from .support import check, introspect, token_for


def test_introspection_of_a_live_token_reports_its_claims(deployment: Deployment) -> None:
    token = token_for(deployment.http, deployment.reader, "detect")

    response = introspect(deployment.http, deployment.admin, token)

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    claims = response.json()
    assert set(claims) == {"active", "scope", "client_id", "token_type", "exp", "iat", "sub"}
    assert claims["active"] is True
    assert claims["scope"] == "detect"
    assert claims["client_id"] == claims["sub"] == "reader"
    assert claims["token_type"] == "Bearer"
    assert claims["exp"] - claims["iat"] in (3600, 3601)


def test_form_authentication_works_for_introspection(deployment: Deployment) -> None:
    token = token_for(deployment.http, deployment.other)
    response = deployment.http.post(
        "/oauth2/introspect",
        data={
            "token": token,
            "client_id": deployment.admin.client_id,
            "client_secret": deployment.admin.secret,
        },
    )
    assert response.json()["active"] is True


@pytest.mark.parametrize(
    "token",
    ["unknown-token", "x" * 43, "a b", "\u00e9t\u00e9"],
)
def test_unknown_tokens_are_exactly_inactive(deployment: Deployment, token: str) -> None:
    response = introspect(deployment.http, deployment.admin, token)
    assert response.status_code == 200
    assert response.json() == {"active": False}


def test_introspection_without_authentication_is_401(deployment: Deployment) -> None:
    """RFC 7662 §2.1: the endpoint MUST require authorization of the caller."""
    token = token_for(deployment.http, deployment.reader)
    response = deployment.http.post("/oauth2/introspect", data={"token": token})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert "active" not in response.json()


def test_introspection_with_a_wrong_secret_is_401(deployment: Deployment) -> None:
    token = token_for(deployment.http, deployment.reader)
    response = deployment.http.post(
        "/oauth2/introspect", data={"token": token}, auth=(deployment.admin.client_id, "wrong")
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_a_client_without_the_introspect_flag_may_not_introspect(deployment: Deployment) -> None:
    token = token_for(deployment.http, deployment.reader)
    response = introspect(deployment.http, deployment.reader, token)
    assert response.status_code == 403
    assert response.json()["error"] == "unauthorized_client"
    assert "active" not in response.json()


def test_introspection_needs_the_token_parameter(deployment: Deployment) -> None:
    response = deployment.http.post(
        "/oauth2/introspect", data={"token_type_hint": "access_token"}, auth=deployment.admin.basic
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_introspection_refuses_an_over_long_token(deployment: Deployment) -> None:
    response = introspect(deployment.http, deployment.admin, "t" * 600)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_revoking_an_own_token_makes_it_inactive_everywhere(deployment: Deployment) -> None:
    token = token_for(deployment.http, deployment.reader)
    assert check(deployment.http, token).status_code == 200

    response = deployment.http.post(
        "/oauth2/revoke",
        data={"token": token, "token_type_hint": "access_token"},
        auth=deployment.reader.basic,
    )

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert check(deployment.http, token).status_code == 401
    assert introspect(deployment.http, deployment.admin, token).json() == {"active": False}
    again = deployment.http.post(
        "/oauth2/revoke", data={"token": token}, auth=deployment.reader.basic
    )
    assert again.status_code == 200


@pytest.mark.parametrize("hint", [None, "refresh_token", "something_else"])
def test_revoking_an_unknown_token_is_200(deployment: Deployment, hint: str | None) -> None:
    data = {"token": "never-issued-token"}
    if hint:
        data["token_type_hint"] = hint
    response = deployment.http.post("/oauth2/revoke", data=data, auth=deployment.other.basic)
    assert response.status_code == 200


def test_a_client_cannot_revoke_another_clients_token(deployment: Deployment) -> None:
    token = token_for(deployment.http, deployment.reader)

    response = deployment.http.post(
        "/oauth2/revoke", data={"token": token}, auth=deployment.other.basic
    )

    assert response.status_code == 403
    assert response.json()["error"] == "unauthorized_client"
    assert check(deployment.http, token).status_code == 200


def test_revocation_needs_client_authentication(deployment: Deployment) -> None:
    token = token_for(deployment.http, deployment.reader)
    response = deployment.http.post("/oauth2/revoke", data={"token": token})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert check(deployment.http, token).status_code == 200


def test_revocation_needs_the_token_parameter(deployment: Deployment) -> None:
    response = deployment.http.post("/oauth2/revoke", data={}, auth=deployment.reader.basic)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("path", ["/oauth2/introspect", "/oauth2/revoke"])
def test_token_in_the_query_string_is_refused(deployment: Deployment, path: str) -> None:
    token = token_for(deployment.http, deployment.reader)
    response = deployment.http.post(
        f"{path}?token={token}", data={"token": token}, auth=deployment.admin.basic
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert check(deployment.http, token).status_code == 200


@pytest.mark.parametrize("path", ["/oauth2/introspect", "/oauth2/revoke"])
def test_json_bodies_are_refused(deployment: Deployment, path: str) -> None:
    response = deployment.http.post(path, json={"token": "x"}, auth=deployment.admin.basic)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
