"""The auth service's one settings object; every field is read from an ``AUTH_`` variable."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from auth_service import secret_strength
from auth_service.db import DEFAULT_POOL_SIZE, DEFAULT_TIMEOUT_SECONDS, DatabaseTarget
from auth_service.ratelimit import AuthLimits
from auth_service.scopes import INFER_ANY, infer_scope
from auth_service.syntax import is_valid_client_id, parse_scope_list
from auth_service.verification import DEFAULT_MAX_PENDING, default_verification_workers

# The models the repository ships: the Open Inference Protocol's `infer:<model>` scopes.
SHIPPED_MODELS: tuple[str, ...] = ("detector", "vae", "classifier")
# Every scope a gateway route asks for (nginx/nginx.conf); models:admin guards model reloads;
# infer:<model> guards /v2/models/<model>/infer, and infer:* grants it on every model.
GATEWAY_SCOPES: tuple[str, ...] = (
    "detect",
    "vae",
    "classify",
    "models:read",
    "models:admin",
    *(infer_scope(model) for model in SHIPPED_MODELS),
    INFER_ANY,
)
# The bootstrap (demo) client's: the task routes, model metadata and inference on the shipped
# models; not models:admin nor infer:* (which covers models imported later): both on purpose.
DEFAULT_BOOTSTRAP_SCOPES: tuple[str, ...] = (
    "detect",
    "vae",
    "classify",
    "models:read",
    *(infer_scope(model) for model in SHIPPED_MODELS),
)
DEFAULT_ISSUER = "http://localhost:8080"  # the gateway's address in docker-compose.yml


def _is_base_url(url: str) -> bool:
    if any(ch.isspace() or not ch.isprintable() for ch in url) or "?" in url or "#" in url:
        return False  # urlsplit would quietly drop some of these
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError if it is not a number in range
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and "@" not in parts.netloc
        and port != 0
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class AuthSettings(BaseSettings):
    # hide_input_in_errors: a rejected setting may be a secret, so errors must not echo it.
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore", hide_input_in_errors=True)

    database_path: Path = Path("var/auth.sqlite3")
    # Set, it selects the store and database_path is not used: postgresql://... (shared by
    # replicas), sqlite:///PATH or a path. Secret: a PostgreSQL URL may carry a password
    # (or leave it out and give PGPASSWORD / ~/.pgpass to libpq).
    database_url: SecretStr | None = None
    database_connections: int = Field(default=DEFAULT_POOL_SIZE, ge=1, le=64)
    # PostgreSQL: the longest wait for a connection or a statement before a 503.
    database_timeout_seconds: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0, le=60)
    host: str = "127.0.0.1"
    # Off: loopback only, behind the gateway on the same host. On (a Kubernetes pod, another
    # host's gateway): any address, and the network (a NetworkPolicy that lets only the gateway
    # or the ingress in) is what keeps everyone else out (docs/auth.md, "Listening").
    allow_non_loopback: bool = False
    port: int = Field(default=8081, ge=1, le=65535)
    unix_socket: Path | None = None
    token_ttl_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    realm: str = Field(default="model-gateway", pattern=r"^[A-Za-z0-9 ._:/-]{1,64}$")
    issuer: str = DEFAULT_ISSUER

    bootstrap_client_id: str | None = None
    bootstrap_client_secret: SecretStr | None = None
    bootstrap_scopes: Annotated[tuple[str, ...], NoDecode] = DEFAULT_BOOTSTRAP_SCOPES
    bootstrap_introspect: bool = False

    # Failure limits (docs/auth.md#security-decisions): per client id and source address, per
    # source address, and per client id from sources that are not known-good.
    max_auth_failures: int = Field(default=AuthLimits.per_client_and_source, ge=1)
    max_source_auth_failures: int = Field(default=AuthLimits.per_source, ge=1)
    max_client_auth_failures: int = Field(default=AuthLimits.per_client, ge=1)
    auth_failure_window_seconds: float = Field(default=AuthLimits.window_seconds, gt=0)
    known_good_seconds: float = Field(default=AuthLimits.known_good_seconds, ge=0)

    # None: one per CPU. A fixed pool keeps CPU and memory bounded under a flood.
    verification_workers: int | None = Field(default=None, ge=1, le=256)
    max_pending_verifications: int = Field(default=DEFAULT_MAX_PENDING, ge=0, le=10_000)
    prune_interval_seconds: float = Field(default=300.0, gt=0)

    log_level: str = Field(default="info", pattern=r"^(critical|error|warning|info|debug)$")
    access_log: bool = False

    @model_validator(mode="after")
    def _host_is_loopback(self) -> AuthSettings:
        if self.allow_non_loopback or _is_loopback(self.host):
            return self
        raise ValueError(
            f"the auth service listens on loopback only, not {self.host!r}, unless"
            " AUTH_ALLOW_NON_LOOPBACK=true says it is meant to (a pod behind a network policy)"
        )

    @field_validator("database_url")
    @classmethod
    def _database_url_is_supported(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None:
            DatabaseTarget.parse(url.get_secret_value())  # its ValueError never quotes the URL
        return url

    @property
    def database(self) -> DatabaseTarget:
        if self.database_url is None:
            return DatabaseTarget(sqlite_path=self.database_path)
        return DatabaseTarget.parse(self.database_url.get_secret_value())

    @field_validator("issuer")
    @classmethod
    def _issuer_is_a_base_url(cls, issuer: str) -> str:
        """RFC 8414 §2: an http(s) URL without query or fragment (https outside development)."""
        if not _is_base_url(issuer):
            raise ValueError(
                "AUTH_ISSUER must be an absolute http or https URL without user, query or"
                " fragment, e.g. https://gateway.example.com"
            )
        # Endpoint URLs are the issuer plus /oauth2/...: no trailing slash, so no "//".
        return issuer.rstrip("/")

    @property
    def verification_worker_count(self) -> int:
        return self.verification_workers or default_verification_workers()

    @property
    def auth_limits(self) -> AuthLimits:
        return AuthLimits(
            per_client_and_source=self.max_auth_failures,
            per_source=self.max_source_auth_failures,
            per_client=self.max_client_auth_failures,
            window_seconds=self.auth_failure_window_seconds,
            known_good_seconds=self.known_good_seconds,
        )

    @field_validator("bootstrap_client_id")
    @classmethod
    def _client_id_is_valid(cls, client_id: str | None) -> str | None:
        if client_id is not None and not is_valid_client_id(client_id):
            raise ValueError(
                "use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        return client_id

    @field_validator("bootstrap_scopes", mode="before")
    @classmethod
    def _split_scopes(cls, value: object) -> object:
        return parse_scope_list(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _bootstrap_is_complete(self) -> AuthSettings:
        if self.bootstrap_client_id is None:
            return self
        secret = self.bootstrap_client_secret
        if secret is None:
            raise ValueError("AUTH_BOOTSTRAP_CLIENT_ID needs AUTH_BOOTSTRAP_CLIENT_SECRET")
        # The reason never quotes the secret (nor does pydantic: hide_input_in_errors).
        weakness = secret_strength.weakness(secret.get_secret_value())
        if weakness is not None:
            raise ValueError(
                f"AUTH_BOOTSTRAP_CLIENT_SECRET {weakness}; {secret_strength.GENERATE_HINT}"
            )
        return self
