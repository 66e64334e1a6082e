"""TLS (docs/gateway.md, "TLS"): the HTTPS listener, its protocols and ciphers, HSTS, the plain
listener's answers when TLS is on, scripts/dev-cert, and the launcher's checks of GATEWAY_TLS_*."""

from __future__ import annotations

import os
import re
import socket
import ssl
import stat
import subprocess
import threading
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session as AuthlibSession
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from oauthlib.oauth2 import BackendApplicationClient
from oauthlib.oauth2.rfc6749.errors import InsecureTransportError
from requests_oauthlib import OAuth2Session

from tests.e2e.conftest import NGINX, assert_nginx_accepts, running_stack
from tests.e2e.stack import PROJECT_ROOT, Stack, free_port, raw_request

DEV_CERT = PROJECT_ROOT / "scripts" / "dev-cert"
LAUNCHER = PROJECT_ROOT / "scripts" / "gateway-exec"
HSTS = "max-age=31536000"

slow = pytest.mark.slow


@dataclass(frozen=True)
class DevCert:
    ca: Path
    cert: Path
    key: Path
    ca_key: Path
    exported: dict[str, str]  # what scripts/dev-cert prints for the shell


def make_dev_cert(directory: Path, *options: str) -> DevCert:
    result = subprocess.run(
        [str(DEV_CERT), "--dir", str(directory), *options],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    exported = dict(re.findall(r"^export (GATEWAY_TLS_[A-Z]+)=(\S+)$", result.stdout, re.M))
    return DevCert(
        ca=directory / "ca.pem",
        cert=directory / "server.pem",
        key=directory / "server-key.pem",
        ca_key=directory / "ca-key.pem",
        exported=exported,
    )


@pytest.fixture(scope="session")
def dev_cert(tmp_path_factory: pytest.TempPathFactory) -> DevCert:
    """One development CA and server certificate per test session, from scripts/dev-cert."""
    return make_dev_cert(tmp_path_factory.mktemp("tls") / "tls")


@pytest.fixture(scope="session")
def tls_gateway(tmp_path_factory: pytest.TempPathFactory, dev_cert: DevCert) -> Iterator[Stack]:
    """A stack with the HTTPS listener on (and the plain one for the probes)."""
    listen = f"127.0.0.1:{free_port()}"
    tls_env = {
        "GATEWAY_TLS_CERT": str(dev_cert.cert),
        "GATEWAY_TLS_KEY": str(dev_cert.key),
        "GATEWAY_TLS_LISTEN": listen,
        "AUTH_ISSUER": f"https://{listen}",  # the RFC 8414 issuer: the public HTTPS address
    }
    yield from running_stack(tmp_path_factory.mktemp("tls-gateway"), extra_env=tls_env)


def https_url(stack: Stack) -> str:
    return "https://" + stack.extra_env["GATEWAY_TLS_LISTEN"]


def tls_port(stack: Stack) -> int:
    return int(stack.extra_env["GATEWAY_TLS_LISTEN"].rsplit(":", 1)[1])


def trusting(ca: Path) -> ssl.SSLContext:
    """A client context that verifies the server against the development CA (and only it)."""
    return ssl.create_default_context(cafile=str(ca))


def https_client(stack: Stack, ca: Path) -> httpx.Client:
    return httpx.Client(base_url=https_url(stack), verify=trusting(ca), timeout=30)


def https_token(client: httpx.Client, stack: Stack, client_id: str, scope: str) -> str:
    response = client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(client_id, stack.secrets[client_id]),
    )
    assert response.status_code == 200, response.text
    assert response.headers["strict-transport-security"] == HSTS
    return response.json()["access_token"]


def handshake(port: int, context: ssl.SSLContext) -> str:
    """The protocol version negotiated with 127.0.0.1:port (raises ssl.SSLError if none)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname="127.0.0.1") as tls,
    ):
        return tls.version() or ""


def legacy_client(ca: Path, version: ssl.TLSVersion, ciphers: str = "DEFAULT") -> ssl.SSLContext:
    """A client that offers only ``version``; security level 0, so that this side (OpenSSL's
    defaults, the system's openssl.cnf) never refuses an old protocol or cipher itself."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1/TLSv1_1 are deprecated
        context = trusting(ca)
        context.minimum_version = version
        context.maximum_version = version
    context.set_ciphers(f"{ciphers}:@SECLEVEL=0")
    return context


# --- scripts/dev-cert -------------------------------------------------------------------------


def test_dev_cert_makes_a_ca_and_a_server_certificate_for_localhost(dev_cert: DevCert) -> None:
    for key in (dev_cert.key, dev_cert.ca_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert dev_cert.exported == {
        "GATEWAY_TLS_CERT": str(dev_cert.cert),
        "GATEWAY_TLS_KEY": str(dev_cert.key),
        "GATEWAY_TLS_LISTEN": "127.0.0.1:8443",
    }
    verify = subprocess.run(
        ["openssl", "verify", "-x509_strict", "-CAfile", str(dev_cert.ca), str(dev_cert.cert)],
        capture_output=True,
        text=True,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    text = subprocess.run(
        ["openssl", "x509", "-in", str(dev_cert.cert), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text
    assert "TLS Web Server Authentication" in text and "CA:FALSE" in text


def test_dev_cert_keeps_its_ca_and_adds_names(tmp_path: Path) -> None:
    first = make_dev_cert(tmp_path / "tls")
    ca = first.ca.read_bytes()
    second = make_dev_cert(tmp_path / "tls", "--name", "gateway.internal", "--name", "10.1.2.3")
    assert second.ca.read_bytes() == ca  # clients that trust it keep working
    text = subprocess.run(
        ["openssl", "x509", "-in", str(second.cert), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:gateway.internal" in text and "IP Address:10.1.2.3" in text
    assert stat.S_IMODE(second.key.stat().st_mode) == 0o600
    third = make_dev_cert(tmp_path / "tls", "--force")
    assert third.ca.read_bytes() != ca


# --- the launcher's checks --------------------------------------------------------------------


def _launch(run_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """gateway-exec nginx up to the final exec (GATEWAY_NGINX=true), with only the GATEWAY_TLS_*
    variables given here."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_TLS_")}
    environment.update(
        GATEWAY_RUN_DIR=str(run_dir),
        GATEWAY_NGINX="true",
        GATEWAY_LISTEN="127.0.0.1:18997",
        **env,
    )
    return subprocess.run(
        [str(LAUNCHER), "nginx"], env=environment, capture_output=True, text=True, timeout=30
    )


def test_tls_is_off_by_default(tmp_path: Path) -> None:
    result = _launch(tmp_path)
    assert result.returncode == 0, result.stderr
    tls_conf = (tmp_path / "nginx" / "runtime" / "tls.conf").read_text()
    assert "listen" not in tls_conf and "ssl" not in tls_conf


def test_rendered_tls_config_is_valid(tmp_path: Path, dev_cert: DevCert) -> None:
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed")
    result = _launch(
        tmp_path,
        GATEWAY_TLS_CERT=str(dev_cert.cert),
        GATEWAY_TLS_KEY=str(dev_cert.key),
        GATEWAY_TLS_LISTEN="127.0.0.1:18996",
    )
    assert result.returncode == 0, result.stderr
    prefix = tmp_path / "nginx"
    tls_conf = (prefix / "runtime" / "tls.conf").read_text()
    assert "listen 127.0.0.1:18996 ssl;" in tls_conf
    assert f"ssl_certificate {dev_cert.cert};" in tls_conf
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in tls_conf
    assert "ssl_session_tickets off;" in tls_conf
    assert_nginx_accepts(prefix)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("cert only", "GATEWAY_TLS_KEY is not set"),
        ("key only", "GATEWAY_TLS_CERT is not set"),
        ("missing cert", "is not a readable file"),
        ("key of another certificate", "is not the (unencrypted) private key"),
        ("key as certificate", "holds no PEM certificate"),
        ("listen without cert", "GATEWAY_TLS_LISTEN is set, but TLS is off"),
        ("bad listen", "GATEWAY_TLS_LISTEN='8443; include /etc/passwd' is not valid"),
        ("same port as plain", "has the port of GATEWAY_LISTEN"),
        ("path with a space", "GATEWAY_TLS_CERT='/tmp/a b' is not valid"),
        ("no-auth on all interfaces", "GATEWAY_BENCH_NO_AUTH=1"),
    ],
)
def test_bad_tls_settings_are_refused(
    tmp_path: Path, dev_cert: DevCert, case: str, message: str
) -> None:
    cert, key = str(dev_cert.cert), str(dev_cert.key)
    env = {
        "cert only": {"GATEWAY_TLS_CERT": cert},
        "key only": {"GATEWAY_TLS_KEY": key},
        "missing cert": {"GATEWAY_TLS_CERT": str(tmp_path / "none.pem"), "GATEWAY_TLS_KEY": key},
        "key of another certificate": {
            "GATEWAY_TLS_CERT": cert,
            "GATEWAY_TLS_KEY": str(dev_cert.ca_key),
        },
        "key as certificate": {"GATEWAY_TLS_CERT": key, "GATEWAY_TLS_KEY": key},
        "listen without cert": {"GATEWAY_TLS_LISTEN": "127.0.0.1:8443"},
        "bad listen": {
            "GATEWAY_TLS_CERT": cert,
            "GATEWAY_TLS_KEY": key,
            "GATEWAY_TLS_LISTEN": "8443; include /etc/passwd",
        },
        "same port as plain": {
            "GATEWAY_TLS_CERT": cert,
            "GATEWAY_TLS_KEY": key,
            "GATEWAY_TLS_LISTEN": "0.0.0.0:18997",
        },
        "path with a space": {"GATEWAY_TLS_CERT": "/tmp/a b", "GATEWAY_TLS_KEY": key},
        "no-auth on all interfaces": {
            "GATEWAY_TLS_CERT": cert,
            "GATEWAY_TLS_KEY": key,
            "GATEWAY_TLS_LISTEN": "0.0.0.0:18996",
            "GATEWAY_BENCH_NO_AUTH": "1",
        },
    }[case]
    result = _launch(tmp_path / "run", **env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert not (tmp_path / "run" / "nginx" / "runtime" / "tls.conf").exists()


def test_every_location_with_its_own_headers_sends_hsts() -> None:
    """nginx drops the server's add_header in a location that has one of its own: each such
    location of nginx.conf must repeat the HSTS header, or its responses (the error pages) go
    out without it."""
    config = (PROJECT_ROOT / "nginx" / "nginx.conf").read_text()
    # Quoted strings (JSON bodies hold braces) and comments out, in one left-to-right scan.
    strings = r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\""
    config = re.sub(rf"{strings}|#[^\n]*", lambda m: "''" if m[0][0] != "#" else "", config)
    # The directives of each block, without those of the blocks inside it.
    stack: list[tuple[str, list[str]]] = [("main", [])]
    blocks: list[tuple[str, list[str]]] = []
    for token in re.findall(r"[^{};]+[{;]|\}", config):
        if token == "}":
            blocks.append(stack.pop())
        elif token.endswith("{"):
            stack.append((" ".join(token[:-1].split()), []))
        else:
            stack[-1][1].append(" ".join(token[:-1].split()))
    with_headers = [
        (name, directives)
        for name, directives in blocks
        if any(d.startswith("add_header ") for d in directives)
    ]
    assert len(with_headers) >= 10, with_headers  # the server and its error locations
    for name, directives in with_headers:
        assert "add_header Strict-Transport-Security $gateway_hsts always" in directives, name


# --- the stack over HTTPS ---------------------------------------------------------------------


@slow
def test_token_and_model_calls_over_https(tls_gateway: Stack, dev_cert: DevCert) -> None:
    with https_client(tls_gateway, dev_cert.ca) as client:
        token = https_token(client, tls_gateway, "full", "models:read classify")
        headers = {"Authorization": f"Bearer {token}"}
        models = client.get("/v1/models", headers=headers)
        assert models.status_code == 200, models.text
        assert models.headers["strict-transport-security"] == HSTS
        text = {"text": "The striker scored twice in the cup final."}
        classified = client.post("/classify", json=text, headers=headers)
        assert classified.status_code == 200, classified.text
        assert client.get("/healthz").json() == {"status": "ok"}


@slow
def test_the_certificate_is_verified(tls_gateway: Stack) -> None:
    """Without the development CA a verifying client refuses the gateway (no silent trust)."""
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(https_url(tls_gateway) + "/healthz", verify=ssl.create_default_context())


@slow
def test_requests_oauthlib_backend_application_client(
    tls_gateway: Stack, dev_cert: DevCert
) -> None:
    """The stock client-credentials client works over HTTPS, with its transport check on."""
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ
    secret = tls_gateway.secrets["full"]
    session = OAuth2Session(client=BackendApplicationClient(client_id="full"))
    # Plain HTTP is refused by the client itself (the audit's InsecureTransportError)...
    with pytest.raises(InsecureTransportError):
        session.fetch_token(
            token_url=f"{tls_gateway.url}/oauth2/token", client_id="full", client_secret=secret
        )
    # ... and HTTPS, verified against the development CA, works.
    token = session.fetch_token(
        token_url=f"{https_url(tls_gateway)}/oauth2/token",
        client_id="full",
        client_secret=secret,
        scope=["models:read"],
        verify=str(dev_cert.ca),
    )
    assert token["token_type"].lower() == "bearer"
    assert token["scope"] == ["models:read"]
    models = session.get(f"{https_url(tls_gateway)}/v1/models", verify=str(dev_cert.ca))
    assert models.status_code == 200, models.text
    assert models.headers["Strict-Transport-Security"] == HSTS
    with pytest.raises(requests.exceptions.SSLError):
        session.get(f"{https_url(tls_gateway)}/v1/models")  # the system CAs: not trusted


@slow
@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_tls_1_2_and_1_3_are_served(tls_gateway: Stack, dev_cert: DevCert, version: str) -> None:
    context = legacy_client(dev_cert.ca, ssl.TLSVersion[version])
    assert handshake(tls_port(tls_gateway), context) == version.replace("_", ".")


def _local_legacy_server(cert: DevCert) -> tuple[int, threading.Thread]:
    """A Python TLS server that accepts every protocol down to TLS 1.0, for one handshake."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.load_cert_chain(cert.cert, cert.key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            connection, _ = listener.accept()
            try:
                with context.wrap_socket(connection, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


@slow
@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_protocols_below_tls_1_2_are_refused(
    tls_gateway: Stack, dev_cert: DevCert, version: str
) -> None:
    context = legacy_client(dev_cert.ca, ssl.TLSVersion[version])
    # The client really can speak it (to a server that allows it), so the refusal is nginx's.
    port, thread = _local_legacy_server(dev_cert)
    assert handshake(port, context) == version.replace("_", ".")
    thread.join(5)
    with pytest.raises(ssl.SSLError) as refused:
        handshake(tls_port(tls_gateway), context)
    assert (
        "PROTOCOL_VERSION" in str(refused.value).upper()
        or "UNSUPPORTED_PROTOCOL" in str(refused.value).upper()
    ), refused.value


@slow
@pytest.mark.parametrize("cipher", ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"])
def test_tls_1_2_without_aead_is_refused(
    tls_gateway: Stack, dev_cert: DevCert, cipher: str
) -> None:
    """CBC suites (with SHA-1 or SHA-384 MACs) are not in the cipher list; the certificate's
    key (ECDSA) would allow them."""
    context = legacy_client(dev_cert.ca, ssl.TLSVersion.TLSv1_2, ciphers=cipher)
    with pytest.raises(ssl.SSLError, match=r"(?i)handshake failure"):
        handshake(tls_port(tls_gateway), context)


@slow
def test_hsts_on_every_https_response(tls_gateway: Stack, dev_cert: DevCert) -> None:
    with https_client(tls_gateway, dev_cert.ca) as client:
        narrow = https_token(client, tls_gateway, "narrow", "detect")
        responses = {
            200: client.get("/healthz"),
            401: client.get("/v1/models"),  # @unauthorized: a location with its own headers
            403: client.get("/v1/models", headers={"Authorization": f"Bearer {narrow}"}),
            404: client.get("/nowhere"),
            413: client.post("/classify", content=b"x" * (11 * 1024 * 1024)),
        }
    for status, response in responses.items():
        assert response.status_code == status, response.text
        assert response.headers.get("strict-transport-security") == HSTS, status
    assert responses[401].json()["error"] == "missing_token"


@slow
def test_plain_http_to_the_https_port_is_a_json_400(tls_gateway: Stack) -> None:
    status, headers, body = raw_request(tls_port(tls_gateway), "GET /healthz HTTP/1.1", [])
    assert status == 400
    assert headers["content-type"].startswith("application/json")
    assert "bad_request" in body
    assert "strict-transport-security" not in headers


@slow
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_plain_listener_still_serves_the_probes(tls_gateway: Stack, path: str) -> None:
    response = httpx.get(tls_gateway.url + path, timeout=10)
    assert response.status_code == 200, response.text
    assert "strict-transport-security" not in response.headers


@slow
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/oauth2/token"),
        ("GET", "/v1/models"),
        ("POST", "/classify"),
        ("GET", "/.well-known/oauth-authorization-server"),
        ("GET", "/docs"),
        ("GET", "/nowhere"),
    ],
)
def test_plain_listener_refuses_everything_else(tls_gateway: Stack, method: str, path: str) -> None:
    """421 https_required, never a redirect (a client would follow it and carry on sending its
    secrets in clear first) and never the route itself."""
    request_id = uuid.uuid4().hex
    response = httpx.request(
        method,
        tls_gateway.url + path,
        data={"grant_type": "client_credentials"},
        auth=("full", tls_gateway.secrets["full"]),
        headers={"X-Request-Id": request_id},
        timeout=10,
        follow_redirects=False,
    )
    assert response.status_code == 421, response.text
    assert response.json()["error"] == "https_required"
    assert str(tls_port(tls_gateway)) in response.json()["detail"]
    assert "location" not in response.headers
    assert "strict-transport-security" not in response.headers
    assert response.headers["x-request-id"] == request_id
    record = tls_gateway.access_record(request_id)
    assert record["status"] == 421
    assert record["upstream_status"] == ""  # neither the auth service nor the app was asked


@slow
def test_no_hsts_without_tls(gateway: Stack) -> None:
    """A gateway without TLS serves plain HTTP as before, and never sends HSTS."""
    for path in ("/healthz", "/v1/models", "/nowhere"):
        response = httpx.get(gateway.url + path, timeout=10)
        assert response.status_code in (200, 401, 404)
        assert "strict-transport-security" not in response.headers
    assert gateway.token("full", "models:read")


@slow
def test_authlib_discovers_the_gateway_through_rfc_8414(
    tls_gateway: Stack, dev_cert: DevCert
) -> None:
    """authlib reads and validates the metadata served through the gateway (it requires an https
    issuer), then gets a token from the token endpoint the metadata names."""
    issuer = https_url(tls_gateway)
    with https_client(tls_gateway, dev_cert.ca) as client:
        response = client.get("/.well-known/oauth-authorization-server")
    assert response.status_code == 200, response.text
    metadata = AuthorizationServerMetadata(response.json())
    metadata.validate()
    assert metadata["issuer"] == issuer
    assert metadata["token_endpoint"] == f"{issuer}/oauth2/token"
    assert "models:admin" in metadata["scopes_supported"]
    session = AuthlibSession(
        "full",
        tls_gateway.secrets["full"],
        token_endpoint_auth_method="client_secret_basic",
        scope="detect",
    )
    token = session.fetch_token(
        metadata["token_endpoint"], grant_type="client_credentials", verify=str(dev_cert.ca)
    )
    assert token["scope"] == "detect"
