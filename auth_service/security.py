"""Secrets and tokens: generation, scrypt hashing of client secrets, sha256 digests of tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from functools import cache

TOKEN_BYTES = 32  # 256-bit access tokens
SECRET_BYTES = 32
SALT_BYTES = 16
HASH_BYTES = 32

# n=2**14, r=8 costs ~40 ms and 16 MiB per hash on the development machine.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
_SCHEME = "scrypt"


@dataclass(frozen=True)
class ScryptParameters:
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P


def new_access_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def new_client_secret() -> str:
    # base64url: no '+', '/' or '=', so the secret needs no escaping in HTTP Basic or a form.
    return secrets.token_urlsafe(SECRET_BYTES)


def token_digest(token: str) -> bytes:
    """What the database stores and indexes instead of the token itself."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def _scrypt(secret: str, salt: bytes, params: ScryptParameters) -> bytes:
    # How many run at once is the verification pool's business (auth_service/verification.py).
    return hashlib.scrypt(
        secret.encode("utf-8"),
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        maxmem=_SCRYPT_MAXMEM,
        dklen=HASH_BYTES,
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str, params: ScryptParameters | None = None) -> str:
    """``scrypt$n=..,r=..,p=..$salt$hash``: the cost travels with the hash, so it can change."""
    params = params or ScryptParameters()
    salt = os.urandom(SALT_BYTES)
    derived = _scrypt(secret, salt, params)
    cost = f"n={params.n},r={params.r},p={params.p}"
    return f"{_SCHEME}${cost}${_b64(salt)}${_b64(derived)}"


def _parse_hash(encoded: str) -> tuple[ScryptParameters, bytes, bytes]:
    scheme, cost, salt, derived = encoded.split("$")
    if scheme != _SCHEME:
        raise ValueError(f"unknown secret hash scheme {scheme!r}")
    values = dict(item.split("=", 1) for item in cost.split(","))
    params = ScryptParameters(n=int(values["n"]), r=int(values["r"]), p=int(values["p"]))
    return params, _unb64(salt), _unb64(derived)


def verify_secret(secret: str, encoded_hash: str) -> bool:
    params, salt, expected = _parse_hash(encoded_hash)
    return hmac.compare_digest(_scrypt(secret, salt, params), expected)


@cache
def _unknown_client_hash() -> str:
    return hash_secret(new_client_secret())


def burn_verification_time(secret: str) -> None:
    """Spend what a real verification costs, so unknown client ids can't be told apart by timing."""
    verify_secret(secret, _unknown_client_hash())
