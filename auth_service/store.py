"""Reads and writes of clients and tokens. Tokens are only ever addressed by their sha256.

The SQL is written once for both backends (db.py): ``?`` placeholders, no literal ``?`` or
``%``, and only what SQLite and PostgreSQL both accept (``ON CONFLICT ... DO NOTHING``,
``INSERT ... SELECT``, ``JOIN ... USING``); the store tests run on both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from auth_service.db import ConstraintError, Database
from auth_service.syntax import format_scope


@dataclass(frozen=True)
class Client:
    client_id: str
    secret_hash: str
    scopes: frozenset[str]
    may_introspect: bool
    created_at: int
    disabled: bool


@dataclass(frozen=True)
class TokenRecord:
    client_id: str
    scopes: frozenset[str]
    issued_at: int
    expires_at: int
    revoked: bool
    client_disabled: bool


class ClientExistsError(Exception):
    pass


def _scope_set(stored: str) -> frozenset[str]:
    return frozenset(stored.split()) if stored else frozenset()


def _client_from_row(row: Any) -> Client:
    return Client(
        client_id=row["client_id"],
        secret_hash=row["secret_hash"],
        scopes=_scope_set(row["scopes"]),
        may_introspect=bool(row["may_introspect"]),
        created_at=row["created_at"],
        disabled=bool(row["disabled"]),
    )


class Store:
    def __init__(self, database: Database) -> None:
        self._db = database

    @property
    def database(self) -> Database:
        return self._db

    # Clients

    def create_client(
        self,
        client_id: str,
        secret_hash: str,
        scopes: frozenset[str],
        may_introspect: bool,
        now: int,
        *,
        exist_ok: bool = False,
    ) -> bool:
        """Insert a client; a taken id returns False (exist_ok) or raises ClientExistsError."""
        conflict = "ON CONFLICT (client_id) DO NOTHING" if exist_ok else ""
        try:
            with self._db.write() as conn:
                cursor = conn.execute(
                    "INSERT INTO clients (client_id, secret_hash, scopes, may_introspect,"
                    f" created_at) VALUES (?, ?, ?, ?, ?) {conflict}",
                    (client_id, secret_hash, format_scope(scopes), int(may_introspect), now),
                )
        except ConstraintError as error:
            raise ClientExistsError(client_id) from error
        return cursor.rowcount == 1

    def get_client(self, client_id: str) -> Client | None:
        with self._db.connection() as conn:
            row = conn.execute("SELECT * FROM clients WHERE client_id = ?", (client_id,)).fetchone()
        return None if row is None else _client_from_row(row)

    def list_clients(self) -> list[Client]:
        with self._db.connection() as conn:
            rows = conn.execute("SELECT * FROM clients ORDER BY client_id").fetchall()
        return [_client_from_row(row) for row in rows]

    def disable_client(self, client_id: str, now: int) -> bool:
        """Disable a client and revoke its live tokens in one transaction."""
        with self._db.write() as conn:
            cursor = conn.execute(
                "UPDATE clients SET disabled = 1 WHERE client_id = ?", (client_id,)
            )
            conn.execute(
                "UPDATE tokens SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL",
                (now, client_id),
            )
        return cursor.rowcount == 1

    def set_secret_hash(self, client_id: str, secret_hash: str) -> bool:
        with self._db.write() as conn:
            cursor = conn.execute(
                "UPDATE clients SET secret_hash = ? WHERE client_id = ?", (secret_hash, client_id)
            )
        return cursor.rowcount == 1

    # Tokens

    def insert_token(
        self,
        digest: bytes,
        client_id: str,
        scopes: frozenset[str],
        issued_at: int,
        expires_at: int,
    ) -> bool:
        """Store a token unless its client is disabled (checked in the same statement)."""
        with self._db.write() as conn:
            cursor = conn.execute(
                "INSERT INTO tokens (token_hash, client_id, scopes, issued_at, expires_at)"
                " SELECT ?, client_id, ?, ?, ? FROM clients WHERE client_id = ? AND disabled = 0",
                (digest, format_scope(scopes), issued_at, expires_at, client_id),
            )
        return cursor.rowcount == 1

    def find_token(self, digest: bytes) -> TokenRecord | None:
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT t.client_id, t.scopes, t.issued_at, t.expires_at, t.revoked_at,"
                " c.disabled FROM tokens AS t JOIN clients AS c USING (client_id)"
                " WHERE t.token_hash = ?",
                (digest,),
            ).fetchone()
        if row is None:
            return None
        return TokenRecord(
            client_id=row["client_id"],
            scopes=_scope_set(row["scopes"]),
            issued_at=row["issued_at"],
            expires_at=row["expires_at"],
            revoked=row["revoked_at"] is not None,
            client_disabled=bool(row["disabled"]),
        )

    def revoke_token(self, digest: bytes, now: int) -> bool:
        """Mark a token revoked (keeping the first revocation time); False if there is none."""
        with self._db.write() as conn:
            conn.execute(
                "UPDATE tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
                (now, digest),
            )
            row = conn.execute("SELECT 1 FROM tokens WHERE token_hash = ?", (digest,)).fetchone()
        return row is not None

    def prune_expired(self, now: int) -> int:
        with self._db.write() as conn:
            cursor = conn.execute("DELETE FROM tokens WHERE expires_at <= ?", (now,))
        return cursor.rowcount
