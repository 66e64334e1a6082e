"""Administration of clients and tokens, shared by the CLI and the bootstrap on start."""

from __future__ import annotations

import logging

from auth_service.clock import Clock
from auth_service.security import hash_secret, new_client_secret, token_digest
from auth_service.settings import AuthSettings
from auth_service.store import ClientExistsError, Store
from auth_service.syntax import is_valid_client_id

logger = logging.getLogger("auth_service.admin")


class AdminError(Exception):
    """A refused administrative action, with a message for the operator."""


def _validated_id(client_id: str) -> str:
    if not is_valid_client_id(client_id):
        raise AdminError(
            f"invalid client id {client_id!r}: use 1-64 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return client_id


def _validated_scopes(scopes: tuple[str, ...], may_introspect: bool) -> frozenset[str]:
    if not scopes and not may_introspect:
        raise AdminError("a client needs at least one scope, or --introspect")
    return frozenset(scopes)


def create_client(
    store: Store, clock: Clock, client_id: str, scopes: tuple[str, ...], may_introspect: bool
) -> str:
    """Register a client with a generated secret and return that secret (it is not stored)."""
    secret = new_client_secret()
    try:
        store.create_client(
            _validated_id(client_id),
            hash_secret(secret),
            _validated_scopes(scopes, may_introspect),
            may_introspect,
            int(clock()),
        )
    except ClientExistsError as error:
        raise AdminError(f"client {client_id!r} already exists") from error
    logger.info("client created client_id=%s", client_id)
    return secret


def rotate_secret(store: Store, client_id: str) -> str:
    secret = new_client_secret()
    if not store.set_secret_hash(client_id, hash_secret(secret)):
        raise AdminError(f"no client {client_id!r}")
    logger.info("client secret rotated client_id=%s", client_id)
    return secret


def disable_client(store: Store, clock: Clock, client_id: str) -> None:
    if not store.disable_client(client_id, int(clock())):
        raise AdminError(f"no client {client_id!r}")
    logger.info("client disabled client_id=%s", client_id)


def revoke_token(store: Store, clock: Clock, token: str) -> None:
    if not store.revoke_token(token_digest(token), int(clock())):
        raise AdminError("no such token (unknown, or already pruned after expiry)")
    logger.info("token revoked by an administrator")


def bootstrap_client(store: Store, settings: AuthSettings, clock: Clock) -> bool:
    """Create the AUTH_BOOTSTRAP_* client unless it exists; True if it was created now."""
    if settings.bootstrap_client_id is None or settings.bootstrap_client_secret is None:
        return False
    client_id = _validated_id(settings.bootstrap_client_id)
    if store.get_client(client_id) is not None:
        return False
    created = store.create_client(
        client_id,
        hash_secret(settings.bootstrap_client_secret.get_secret_value()),
        _validated_scopes(settings.bootstrap_scopes, settings.bootstrap_introspect),
        settings.bootstrap_introspect,
        int(clock()),
        exist_ok=True,
    )
    if created:
        logger.info("bootstrap client created client_id=%s", client_id)
    return created
