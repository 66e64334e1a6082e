"""HTTP Basic as stock clients send it, with a secret holding '+', '/' and '=' (base64).

RFC 6749 §2.3.1 wants id and secret form-encoded inside Basic; curl -u, requests, httpx and
authlib's client_secret_basic send them raw. Each of them must get a token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
import requests
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.integrations.requests_client import OAuth2Session
from requests.auth import HTTPBasicAuth

from .conftest import ServerFactory
from .support import AuthServer

CLIENT_ID = "base64-client"
# "++++////" then random base64: every character that form decoding would get wrong, and '='.
SECRET = base64.b64encode(b"\xfb\xef\xbe\xff\xff\xff" + os.urandom(26)).decode()
GRANT = {"grant_type": "client_credentials"}


@pytest.fixture
def server(start_server: ServerFactory) -> Iterator[AuthServer]:
    assert {"+", "/", "="} <= set(SECRET)
    # The bootstrap client is the way to register a client with a secret of one's choosing.
    yield start_server(
        AUTH_BOOTSTRAP_CLIENT_ID=CLIENT_ID,
        AUTH_BOOTSTRAP_CLIENT_SECRET=SECRET,
        AUTH_BOOTSTRAP_SCOPES="detect",
    )


def _token_endpoint(server: AuthServer) -> str:
    return f"{server.url}/oauth2/token"


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_u(server: AuthServer) -> None:
    result = subprocess.run(
        [
            "curl", "-sS", "--noproxy", "*", "-u", f"{CLIENT_ID}:{SECRET}",
            "-d", "grant_type=client_credentials", _token_endpoint(server),
        ],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert json.loads(result.stdout)["token_type"] == "Bearer", result.stdout


def test_requests_http_basic_auth(server: AuthServer) -> None:
    with requests.Session() as session:
        session.trust_env = False
        response = session.post(
            _token_endpoint(server), data=GRANT, auth=HTTPBasicAuth(CLIENT_ID, SECRET), timeout=30
        )
    assert response.status_code == 200, response.text


def test_httpx_basic_auth(server: AuthServer) -> None:
    response = httpx.post(
        _token_endpoint(server), data=GRANT, auth=(CLIENT_ID, SECRET), trust_env=False
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_oauth2_session(server: AuthServer, method: str) -> None:
    with OAuth2Session(CLIENT_ID, SECRET, token_endpoint_auth_method=method) as session:
        session.trust_env = False
        token = session.fetch_token(_token_endpoint(server), grant_type="client_credentials")
    assert token["scope"] == "detect"


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_authlib_async_oauth2_client(server: AuthServer, method: str) -> None:
    async def fetch() -> dict[str, object]:
        async with AsyncOAuth2Client(
            CLIENT_ID, SECRET, token_endpoint_auth_method=method, trust_env=False
        ) as client:
            return await client.fetch_token(
                _token_endpoint(server), grant_type="client_credentials"
            )

    assert asyncio.run(fetch())["scope"] == "detect"


def test_a_form_encoding_client_is_understood_too(server: AuthServer) -> None:
    """RFC 6749 §2.3.1 to the letter: '+' sent as %2B, '/' as %2F, '=' as %3D."""
    pair = base64.b64encode(f"{CLIENT_ID}:{quote(SECRET, safe='')}".encode()).decode()
    response = httpx.post(
        _token_endpoint(server),
        data=GRANT,
        headers={"Authorization": f"Basic {pair}"},
        trust_env=False,
    )
    assert response.status_code == 200, response.text
