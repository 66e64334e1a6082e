"""Well-formed client ids, scopes and bearer tokens (RFC 6749 §3.3, RFC 6750 §2.1)."""

from __future__ import annotations

import re
from collections.abc import Iterable

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = r"[\x21\x23-\x5B\x5D-\x7E]+"
_SCOPE_PARAMETER = re.compile(rf"{_SCOPE_TOKEN}(?: {_SCOPE_TOKEN})*")
_SCOPE_TOKEN_ONLY = re.compile(_SCOPE_TOKEN)
_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

MAX_SCOPE_LENGTH = 1024
MAX_TOKEN_LENGTH = 512


def parse_scope_parameter(value: str) -> frozenset[str]:
    """Parse an OAuth ``scope`` parameter: scope tokens separated by single spaces."""
    if len(value) > MAX_SCOPE_LENGTH or not _SCOPE_PARAMETER.fullmatch(value):
        raise ValueError("scope must be scope tokens separated by single spaces")
    return frozenset(value.split(" "))


def parse_scope_list(value: str) -> tuple[str, ...]:
    """Parse a human-written scope list (``detect,classify`` or ``detect classify``)."""
    scopes = [part for part in re.split(r"[,\s]+", value) if part]
    for scope in scopes:
        if not _SCOPE_TOKEN_ONLY.fullmatch(scope):
            raise ValueError(f"invalid scope {scope!r}")
    return tuple(dict.fromkeys(scopes))


def format_scope(scopes: Iterable[str]) -> str:
    """The canonical ``scope`` string: sorted scope tokens separated by spaces."""
    return " ".join(sorted(scopes))


def is_valid_client_id(client_id: str) -> bool:
    return _CLIENT_ID.fullmatch(client_id) is not None


def is_well_formed_bearer_token(token: str) -> bool:
    return len(token) <= MAX_TOKEN_LENGTH and _BEARER_TOKEN.fullmatch(token) is not None
