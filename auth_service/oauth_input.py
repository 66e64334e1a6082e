"""Parsing of what OAuth clients send to the OAuth endpoints: form bodies and credentials.

Everything here is strict and fails with an RFC 6749 §5.2 error, never with an exception that
would become a 500.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

from auth_service.errors import invalid_client, invalid_request
from auth_service.source import LOCAL, SourceAddress, parse_source_address
from auth_service.syntax import MAX_SCOPE_LENGTH, MAX_TOKEN_LENGTH

MAX_BODY_BYTES = 8 * 1024
MAX_FORM_FIELDS = 16
MAX_CLIENT_ID_LENGTH = 128
MAX_CLIENT_SECRET_LENGTH = 256

# Longest value accepted per known parameter; unknown parameters are ignored (RFC 6749 §3.2).
FIELD_LIMITS: dict[str, int] = {
    "grant_type": 64,
    "scope": MAX_SCOPE_LENGTH,
    "client_id": MAX_CLIENT_ID_LENGTH,
    "client_secret": MAX_CLIENT_SECRET_LENGTH,
    "token": MAX_TOKEN_LENGTH,
    "token_type_hint": 64,
}
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_BROKEN_PERCENT_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class ClientCredentials:
    client_id: str
    client_secret: str = ""

    def __repr__(self) -> str:  # keeps the secret out of logs and tracebacks
        return f"ClientCredentials(client_id={self.client_id!r})"


def check_content_type(content_type: str | None) -> None:
    media_type, _, parameters = (content_type or "").partition(";")
    if media_type.strip().lower() != FORM_CONTENT_TYPE:
        raise invalid_request(f"the request body must be {FORM_CONTENT_TYPE}")
    for parameter in filter(str.strip, parameters.split(";")):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            raise invalid_request("the request body must be UTF-8")


def check_no_query_parameters(query_string: str) -> None:
    """RFC 6749 §2.3.1: credentials and tokens must not travel in the request URI."""
    if query_string:
        raise invalid_request("parameters must be sent in the request body, not the URI")


def parse_form(body: bytes) -> dict[str, str]:
    """Decode a urlencoded body; blank values count as absent (RFC 6749 §3.1)."""
    try:
        text = body.decode("utf-8")
        if _BROKEN_PERCENT_ESCAPE.search(text):
            raise ValueError("broken percent-escape")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=True,
            max_num_fields=MAX_FORM_FIELDS,
            errors="strict",
        )
    except ValueError as error:  # includes UnicodeDecodeError
        raise invalid_request("the request body is not a valid urlencoded form") from error
    form: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in pairs:
        if name in seen:
            raise invalid_request(f"the parameter {name!r} is repeated")
        seen.add(name)
        limit = FIELD_LIMITS.get(name)
        if limit is None:
            continue
        if len(value) > limit:
            raise invalid_request(f"the parameter {name!r} is longer than {limit} characters")
        if value:
            form[name] = value
    return form


def _percent_decode(value: str) -> str:
    """Percent-decoding without form decoding's '+' -> ' ', rejecting broken escapes.

    RFC 6749 §2.3.1 asks clients to form-encode id and secret inside HTTP Basic, but curl -u,
    requests, httpx and authlib send them as they are: a '+' in a secret is a '+'. A client
    that does form-encode sends a '+' as %2B, and a space as %20 (or '+', which is why a space
    is not allowed in secrets that people choose: settings.py).
    """
    if _BROKEN_PERCENT_ESCAPE.search(value):
        raise ValueError("broken percent-escape")
    return unquote(value, errors="strict")


def _basic_credentials(encoded: str) -> ClientCredentials:
    """RFC 6749 §2.3.1: base64 of client_id ":" client_secret, each percent-decoded."""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        client_id, colon, client_secret = decoded.partition(":")
        client_id, client_secret = _percent_decode(client_id), _percent_decode(client_secret)
    except (binascii.Error, ValueError) as error:  # ValueError includes UnicodeDecodeError
        raise invalid_request("the Basic credentials are not base64 of urlencoded UTF-8") from error
    if not colon or not client_id or not client_secret:
        raise invalid_request("the Basic credentials need a client id, ':' and a secret")
    if len(client_id) > MAX_CLIENT_ID_LENGTH or len(client_secret) > MAX_CLIENT_SECRET_LENGTH:
        raise invalid_request("the Basic credentials are too long")
    return ClientCredentials(client_id, client_secret)


def client_credentials(
    authorization: str | None, form: dict[str, str], realm: str
) -> ClientCredentials | None:
    """The client's credentials from exactly one of HTTP Basic or the form; None if neither."""
    in_form = "client_id" in form or "client_secret" in form
    if authorization is None:
        if not in_form:
            return None
        if "client_id" not in form or "client_secret" not in form:
            raise invalid_client("client_id and client_secret must be sent together", realm)
        return ClientCredentials(form["client_id"], form["client_secret"])
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        raise invalid_client("client authentication must use HTTP Basic or form fields", realm)
    if in_form:
        raise invalid_request("use either HTTP Basic or form fields for client authentication")
    return _basic_credentials(encoded)


def client_source(real_ip: list[str], peer_host: str | None) -> SourceAddress:
    """Who is authenticating, for the failure limits: nginx's ``X-Real-IP: $remote_addr``.

    The header is trusted because only nginx can reach this service (loopback or a unix
    socket; settings.py refuses other addresses). Without it the TCP peer counts, or "local"
    for a caller on the unix socket.
    """
    if len(real_ip) > 1:
        raise invalid_request("more than one X-Real-IP header")
    if real_ip:
        if real_ip[0].strip() == "unix:":  # nginx's $remote_addr for a unix-socket client
            return LOCAL
        try:
            return parse_source_address(real_ip[0])
        except ValueError:
            raise invalid_request("X-Real-IP is not an IP address") from None
    if not peer_host:
        return LOCAL
    try:
        return parse_source_address(peer_host)
    except ValueError:
        return LOCAL  # a test client's made-up name, or a socket path


def require(form: dict[str, str], name: str) -> str:
    value = form.get(name)
    if value is None:
        raise invalid_request(f"the parameter {name!r} is missing")
    return value
