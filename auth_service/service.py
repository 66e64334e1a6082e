"""What the endpoints do, as plain functions of parsed input: no HTTP in here."""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from auth_service.client_auth import ClientAuthenticator
from auth_service.clock import Clock
from auth_service.errors import OAuthError, invalid_client, not_permitted
from auth_service.oauth_input import ClientCredentials, require
from auth_service.ratelimit import ClientAuthLimiter
from auth_service.scopes import missing as missing_scopes
from auth_service.security import new_access_token, token_digest
from auth_service.source import SourceAddress
from auth_service.store import Client, Store, TokenRecord
from auth_service.syntax import (
    format_scope,
    is_well_formed_bearer_token,
    parse_scope_list,
    parse_scope_parameter,
)
from auth_service.verification import (
    DEFAULT_MAX_PENDING,
    VerificationPool,
    default_verification_workers,
)

logger = logging.getLogger("auth_service")

TOKEN_TYPE = "Bearer"
CLIENT_CREDENTIALS = "client_credentials"


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    client_id: str
    expires_in: int
    scopes: frozenset[str]

    def __repr__(self) -> str:  # keeps the token out of logs and tracebacks
        return f"IssuedToken(client_id={self.client_id!r}, expires_in={self.expires_in})"

    def body(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": TOKEN_TYPE,
            "expires_in": self.expires_in,
            "scope": format_scope(self.scopes),
        }


class CheckOutcome(enum.Enum):
    ALLOWED = "allowed"
    MISSING_TOKEN = "missing_token"
    INVALID_TOKEN = "invalid_token"
    INVALID_REQUEST = "invalid_request"
    INSUFFICIENT_SCOPE = "insufficient_scope"


@dataclass(frozen=True)
class CheckResult:
    outcome: CheckOutcome
    detail: str = ""
    client_id: str = ""
    scopes: frozenset[str] = field(default_factory=frozenset)
    required_scopes: frozenset[str] = field(default_factory=frozenset)


def _has_query_token(uri: str | None) -> bool:
    if not uri or "access_token" not in uri:
        return False
    query = urlsplit(uri).query
    return any(name == "access_token" for name, _ in parse_qsl(query, keep_blank_values=True))


def _bearer_token(authorization: str) -> str | None:
    """The token of ``Bearer <token>``; None if the scheme is not Bearer (RFC 6750 §2.1)."""
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _required_scopes(header: str | None) -> frozenset[str]:
    """The scopes nginx says the route needs; empty (deny) when absent or malformed."""
    try:
        return frozenset(parse_scope_list(header or ""))
    except ValueError:
        return frozenset()


def _inactive_reason(record: TokenRecord, now: float) -> str | None:
    if record.revoked:
        return "the token has been revoked"
    if record.client_disabled:
        return "the token's client is disabled"
    if now >= record.expires_at:
        return "the token has expired"
    return None


class AuthService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        token_ttl_seconds: int,
        realm: str,
        limiter: ClientAuthLimiter,
        verifier: VerificationPool | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._ttl = token_ttl_seconds
        self._realm = realm
        # Without a pool of its own (benchmarks, tools) the service makes one; its threads
        # start only when a secret is first verified.
        self.verifier = verifier or VerificationPool(
            default_verification_workers(), DEFAULT_MAX_PENDING
        )
        self._authenticator = ClientAuthenticator(store, limiter, self.verifier, realm)

    # Client authentication: on the event loop, with the scrypt in the verification pool.

    async def authenticate(
        self, credentials: ClientCredentials | None, source: SourceAddress
    ) -> Client:
        return await self._authenticator.authenticate(credentials, source)

    # Endpoints, for an authenticated caller (they read and write the database: worker thread)

    def issue_token(self, client: Client, form: dict[str, str]) -> IssuedToken:
        """RFC 6749 §4.4: the client credentials grant."""
        grant_type = require(form, "grant_type")
        if grant_type != CLIENT_CREDENTIALS:
            raise OAuthError("unsupported_grant_type", f"only {CLIENT_CREDENTIALS} is supported")
        if not client.scopes:
            raise OAuthError("unauthorized_client", "this client may not obtain access tokens")
        scopes = self._granted_scopes(client, form.get("scope"))
        token = new_access_token()
        now = self._clock()
        # Whole seconds (RFC 7662 iat/exp); rounding exp up means a token never lives less than ttl.
        issued_at, expires_at = int(now), math.ceil(now + self._ttl)
        if not self._store.insert_token(
            token_digest(token), client.client_id, scopes, issued_at, expires_at
        ):
            raise invalid_client("client authentication failed", self._realm)
        logger.info(
            "token issued client_id=%s scope=%r expires_in=%d",
            client.client_id,
            format_scope(scopes),
            self._ttl,
        )
        return IssuedToken(token, client.client_id, self._ttl, scopes)

    def _granted_scopes(self, client: Client, requested: str | None) -> frozenset[str]:
        if requested is None:
            return client.scopes
        try:
            scopes = parse_scope_parameter(requested)
        except ValueError as error:
            raise OAuthError("invalid_scope", str(error)) from error
        unknown = missing_scopes(scopes, client.scopes)  # infer:* may ask for infer:<model>
        if unknown:
            raise OAuthError(
                "invalid_scope", f"scope not allowed for this client: {format_scope(unknown)}"
            )
        return scopes

    def introspect(self, caller: Client, form: dict[str, str]) -> dict[str, Any]:
        """RFC 7662: the caller must be a client allowed to introspect."""
        if not caller.may_introspect:
            raise not_permitted("this client may not introspect tokens")
        token = require(form, "token")
        record = self._store.find_token(token_digest(token))
        if record is None or _inactive_reason(record, self._clock()) is not None:
            return {"active": False}
        return {
            "active": True,
            "scope": format_scope(record.scopes),
            "client_id": record.client_id,
            "token_type": TOKEN_TYPE,
            "exp": record.expires_at,
            "iat": record.issued_at,
            "sub": record.client_id,
        }

    def revoke(self, caller: Client, form: dict[str, str]) -> None:
        """RFC 7009: unknown tokens are fine; another client's token is refused."""
        token = require(form, "token")
        digest = token_digest(token)
        record = self._store.find_token(digest)
        if record is None:
            logger.info("revocation of an unknown token client_id=%s", caller.client_id)
            return
        if record.client_id != caller.client_id:
            logger.warning(
                "revocation of another client's token refused client_id=%s", caller.client_id
            )
            raise not_permitted("the token was not issued to this client")
        self._store.revoke_token(digest, int(self._clock()))
        logger.info("token revoked client_id=%s", caller.client_id)

    def check(
        self,
        authorization: str | None,
        required_scope: str | None,
        uris: tuple[str | None, ...] = (),
    ) -> CheckResult:
        """The gateway's check: cheap (no hashing beyond one sha256, one indexed lookup)."""
        if any(_has_query_token(uri) for uri in uris):
            return CheckResult(
                CheckOutcome.INVALID_REQUEST,
                "access tokens are accepted only in the Authorization header",
            )
        token = None if authorization is None else _bearer_token(authorization)
        if token is None:
            return CheckResult(
                CheckOutcome.MISSING_TOKEN, "send the access token as Authorization: Bearer <token>"
            )
        if not is_well_formed_bearer_token(token):
            return CheckResult(CheckOutcome.INVALID_TOKEN, "malformed bearer token")
        record = self._store.find_token(token_digest(token))
        if record is None:
            return CheckResult(CheckOutcome.INVALID_TOKEN, "unknown token")
        reason = _inactive_reason(record, self._clock())
        if reason is not None:
            return CheckResult(CheckOutcome.INVALID_TOKEN, reason)
        required = _required_scopes(required_scope)
        if not required:
            logger.error("the gateway sent no valid X-Required-Scope header; access denied")
            outcome, detail = CheckOutcome.INSUFFICIENT_SCOPE, "the route declares no scope"
        elif missing := missing_scopes(required, record.scopes):
            outcome = CheckOutcome.INSUFFICIENT_SCOPE
            detail = f"the token lacks the scope {format_scope(missing)}"
        else:
            outcome, detail = CheckOutcome.ALLOWED, ""
        return CheckResult(outcome, detail, record.client_id, record.scopes, required)

    def prune_expired_tokens(self) -> int:
        return self._store.prune_expired(int(self._clock()))
