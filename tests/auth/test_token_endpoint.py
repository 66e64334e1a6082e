"""POST /oauth2/token over HTTP: the client credentials grant and every RFC 6749 §5.2 error."""

from __future__ import annotations

import base64

import httpx
import pytest

from .conftest import Deployment
from .support import check

GRANT = {"grant_type": "client_credentials"}


def _basic(raw: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}


def _assert_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == error
    assert body["error_description"]
    assert response.headers["cache-control"] == "no-store"


def test_basic_auth_issues_a_bearer_token_for_all_allowed_scopes(deployment: Deployment) -> None:
    response = deployment.http.post("/oauth2/token", data=GRANT, auth=deployment.reader.basic)

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "classify detect"
    assert len(body["access_token"]) == 43  # 256 bits in unpadded base64url
    assert check(deployment.http, body["access_token"], "classify").status_code == 200


def test_form_credentials_issue_a_token_with_the_requested_subset(deployment: Deployment) -> None:
    response = deployment.http.post(
        "/oauth2/token",
        data={
            **GRANT,
            "scope": "detect",
            "client_id": deployment.reader.client_id,
            "client_secret": deployment.reader.secret,
        },
    )

    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert response.json()["scope"] == "detect"
    assert check(deployment.http, token, "detect").status_code == 200
    assert check(deployment.http, token, "classify").status_code == 403


def test_each_request_gets_a_new_token(deployment: Deployment) -> None:
    tokens = {
        deployment.http.post("/oauth2/token", data=GRANT, auth=deployment.other.basic).json()[
            "access_token"
        ]
        for _ in range(3)
    }
    assert len(tokens) == 3


@pytest.mark.parametrize(
    ("scope", "error"),
    [
        ("vae", "invalid_scope"),  # not allowed for the client
        ("detect vae", "invalid_scope"),  # partly allowed
        ("detect  classify", "invalid_scope"),  # RFC 6749 §3.3: single spaces
        ('det"ect', "invalid_scope"),  # not a scope-token character
    ],
)
def test_scope_outside_the_allowed_set_is_invalid_scope(
    deployment: Deployment, scope: str, error: str
) -> None:
    response = deployment.http.post(
        "/oauth2/token", data={**GRANT, "scope": scope}, auth=deployment.reader.basic
    )
    _assert_error(response, 400, error)


def test_wrong_secret_is_invalid_client_with_basic_challenge(deployment: Deployment) -> None:
    response = deployment.http.post(
        "/oauth2/token", data=GRANT, auth=(deployment.reader.client_id, "not-the-secret")
    )
    _assert_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"] == 'Basic realm="model-gateway"'


@pytest.mark.parametrize(
    "request_kwargs",
    [
        pytest.param({"auth": ("nobody", "whatever-secret")}, id="unknown client"),
        pytest.param({}, id="no authentication"),
        pytest.param({"headers": {"Authorization": "Bearer abc"}}, id="unsupported scheme"),
        pytest.param({"extra": {"client_id": "reader"}}, id="form client_id without secret"),
    ],
)
def test_failed_client_authentication_is_invalid_client(
    deployment: Deployment, request_kwargs: dict
) -> None:
    data = {**GRANT, **request_kwargs.pop("extra", {})}
    response = deployment.http.post("/oauth2/token", data=data, **request_kwargs)
    _assert_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic ")


def test_basic_credentials_are_form_urldecoded(deployment: Deployment) -> None:
    """RFC 6749 §2.3.1: id and secret are urlencoded before base64; '%2D' is '-'."""
    client_id = deployment.reader.client_id.replace("e", "%65")
    secret = deployment.reader.secret.replace("-", "%2D").replace("_", "%5F")
    response = deployment.http.post(
        "/oauth2/token", data=GRANT, headers=_basic(f"{client_id}:{secret}")
    )
    assert response.status_code == 200, response.text


def test_disabled_grant_for_introspection_only_client_is_unauthorized_client(
    deployment: Deployment,
) -> None:
    response = deployment.http.post("/oauth2/token", data=GRANT, auth=deployment.admin.basic)
    _assert_error(response, 400, "unauthorized_client")


@pytest.mark.parametrize("grant_type", ["password", "authorization_code", "refresh_token", "x"])
def test_other_grant_types_are_unsupported(deployment: Deployment, grant_type: str) -> None:
    response = deployment.http.post(
        "/oauth2/token", data={"grant_type": grant_type}, auth=deployment.reader.basic
    )
    _assert_error(response, 400, "unsupported_grant_type")


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        pytest.param(b"scope=detect", {}, 400, id="missing grant_type"),
        pytest.param(b"grant_type=", {}, 400, id="blank grant_type counts as missing"),
        pytest.param(
            b"grant_type=client_credentials&grant_type=client_credentials",
            {},
            400,
            id="duplicate parameter",
        ),
        pytest.param(
            b"grant_type=client_credentials&scope=detect&scope=detect",
            {},
            400,
            id="duplicate scope",
        ),
        pytest.param(
            b'{"grant_type": "client_credentials"}',
            {"Content-Type": "application/json"},
            400,
            id="json body",
        ),
        pytest.param(
            b"grant_type=client_credentials", {"Content-Type": "text/plain"}, 400, id="text body"
        ),
        pytest.param(
            b"grant_type=client_credentials",
            {"Content-Type": "application/x-www-form-urlencoded; charset=latin-1"},
            400,
            id="non-utf8 charset",
        ),
        pytest.param(b"grant_type=%ff%fe", {}, 400, id="invalid utf-8"),
        pytest.param(b"grant_type=client%ZZcredentials", {}, 400, id="broken percent-escape"),
        pytest.param(b"\xff\xfe=1", {}, 400, id="raw bytes"),
        pytest.param(b"grant_type", {}, 400, id="not key=value"),
        pytest.param(
            b"grant_type=client_credentials&scope=" + b"a" * 1100, {}, 400, id="long scope"
        ),
        pytest.param(b"grant_type=" + b"x" * 100, {}, 400, id="long grant_type"),
        pytest.param(b"&".join(b"f%d=1" % i for i in range(20)), {}, 400, id="too many fields"),
        pytest.param(b"grant_type=client_credentials&pad=" + b"a" * 9000, {}, 413, id="huge body"),
    ],
)
def test_malformed_requests_are_invalid_request(
    deployment: Deployment, content: bytes, headers: dict[str, str], status: int
) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded", **headers}
    response = deployment.http.post(
        "/oauth2/token", content=content, headers=headers, auth=deployment.reader.basic
    )
    _assert_error(response, status, "invalid_request")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(None, id="not base64"),
        pytest.param("reader-without-colon", id="no colon"),
        pytest.param(":secret", id="empty id"),
        pytest.param("reader:", id="empty secret"),
        pytest.param("reader:%ZZ", id="bad percent-encoding"),
        pytest.param("reader:%ff", id="percent-encoded non-utf8"),
        pytest.param("a" * 200 + ":secret", id="over-long id"),
    ],
)
def test_malformed_basic_header_is_invalid_request(deployment: Deployment, raw: str | None) -> None:
    headers = {"Authorization": "Basic !!not*base64!!"} if raw is None else _basic(raw)
    response = deployment.http.post("/oauth2/token", data=GRANT, headers=headers)
    _assert_error(response, 400, "invalid_request")


def test_basic_and_form_credentials_together_are_invalid_request(deployment: Deployment) -> None:
    response = deployment.http.post(
        "/oauth2/token",
        data={**GRANT, "client_id": deployment.reader.client_id, "client_secret": "x"},
        auth=deployment.reader.basic,
    )
    _assert_error(response, 400, "invalid_request")


def test_empty_form_credentials_beside_basic_count_as_omitted(deployment: Deployment) -> None:
    # RFC 6749 §3.1: a parameter sent without a value is treated as omitted (found by the fuzzer:
    # the schema said client_id had at least one character).
    response = deployment.http.post(
        "/oauth2/token",
        data={**GRANT, "client_id": "", "client_secret": ""},
        auth=deployment.reader.basic,
    )
    assert response.status_code == 200, response.text
    schema = deployment.http.get("/openapi.json").json()
    form = schema["paths"]["/oauth2/token"]["post"]["requestBody"]["content"]
    assert (
        "minLength"
        not in form["application/x-www-form-urlencoded"]["schema"]["properties"]["client_id"]
    )


def test_two_authorization_headers_are_invalid_request(deployment: Deployment) -> None:
    encoded = base64.b64encode(f"{deployment.reader.client_id}:{deployment.reader.secret}".encode())
    headers = [("Authorization", f"Basic {encoded.decode()}")] * 2
    response = deployment.http.post("/oauth2/token", data=GRANT, headers=headers)
    _assert_error(response, 400, "invalid_request")


@pytest.mark.parametrize("query", ["client_secret=s", "grant_type=client_credentials", "a=1"])
def test_parameters_in_the_query_string_are_refused(deployment: Deployment, query: str) -> None:
    response = deployment.http.post(
        f"/oauth2/token?{query}", data=GRANT, auth=deployment.reader.basic
    )
    _assert_error(response, 400, "invalid_request")


def test_wrong_methods_and_paths_get_json_errors(deployment: Deployment) -> None:
    get = deployment.http.get("/oauth2/token")
    assert get.status_code == 405
    assert get.json()["error"] == "method_not_allowed"
    missing = deployment.http.get("/oauth2/nothing")
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
