"""The auth service's one settings object; every field is read from an ``AUTH_`` variable."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from auth_service.db import DEFAULT_POOL_SIZE
from auth_service.syntax import is_valid_client_id, parse_scope_list

GATEWAY_SCOPES: tuple[str, ...] = ("detect", "vae", "classify", "models:read")
MIN_BOOTSTRAP_SECRET_LENGTH = 16


class AuthSettings(BaseSettings):
    # hide_input_in_errors: a rejected setting may be a secret, so errors must not echo it.
    model_config = SettingsConfigDict(env_prefix="AUTH_", extra="ignore", hide_input_in_errors=True)

    database_path: Path = Path("var/auth.sqlite3")
    database_connections: int = Field(default=DEFAULT_POOL_SIZE, ge=1, le=64)
    host: str = "127.0.0.1"
    port: int = Field(default=8081, ge=1, le=65535)
    unix_socket: Path | None = None
    token_ttl_seconds: int = Field(default=3600, ge=1, le=7 * 24 * 3600)
    realm: str = Field(default="model-gateway", pattern=r"^[A-Za-z0-9 ._:/-]{1,64}$")

    bootstrap_client_id: str | None = None
    bootstrap_client_secret: SecretStr | None = None
    bootstrap_scopes: Annotated[tuple[str, ...], NoDecode] = GATEWAY_SCOPES
    bootstrap_introspect: bool = False

    max_auth_failures: int = Field(default=5, ge=1)
    auth_failure_window_seconds: float = Field(default=60.0, gt=0)
    prune_interval_seconds: float = Field(default=300.0, gt=0)

    log_level: str = Field(default="info", pattern=r"^(critical|error|warning|info|debug)$")
    access_log: bool = False

    @field_validator("host")
    @classmethod
    def _host_is_loopback(cls, host: str) -> str:
        if host == "localhost":
            return host
        try:
            is_loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            is_loopback = False
        if not is_loopback:
            raise ValueError(f"the auth service listens on loopback only, not {host!r}")
        return host

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
        if len(secret.get_secret_value()) < MIN_BOOTSTRAP_SECRET_LENGTH:
            raise ValueError(
                f"AUTH_BOOTSTRAP_CLIENT_SECRET must have at least "
                f"{MIN_BOOTSTRAP_SECRET_LENGTH} characters"
            )
        return self
