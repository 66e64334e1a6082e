"""The store's schema, as numbered migrations: entry i moves a database from version i to i + 1.

Append, never edit: a database in the field is at some version and upgrades by running the
entries after it, at start-up, in one transaction. The two dialects keep the same numbering
(a test checks it), so "schema version 2" means the same tables on either backend.

Why a small numbered-SQL runner and not Alembic: the schema is two tables; the SQL that
creates them is the whole story and is reviewed as SQL; and Alembic would bring SQLAlchemy and
a migration environment into a service whose store is 160 lines. The runners (one per backend)
are a dozen lines each: SQLite keeps the version in ``PRAGMA user_version``, PostgreSQL in the
``schema_migrations`` table, under an advisory lock so that replicas starting together migrate
once.
"""

from __future__ import annotations

__all__ = ["POSTGRESQL_MIGRATIONS", "SQLITE_MIGRATIONS"]

SQLITE_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE clients (
        client_id      TEXT PRIMARY KEY,
        secret_hash    TEXT NOT NULL,
        scopes         TEXT NOT NULL,
        may_introspect INTEGER NOT NULL DEFAULT 0 CHECK (may_introspect IN (0, 1)),
        created_at     INTEGER NOT NULL,
        disabled       INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
    ) STRICT;
    CREATE TABLE tokens (
        token_hash BLOB PRIMARY KEY CHECK (length(token_hash) = 32),
        client_id  TEXT NOT NULL REFERENCES clients (client_id),
        scopes     TEXT NOT NULL,
        issued_at  INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX tokens_by_expiry ON tokens (expires_at);
    CREATE INDEX tokens_by_client ON tokens (client_id);
    """,
)

# The same tables: 0/1 flags as SMALLINT (not BOOLEAN) so the store's SQL compares them with
# the same literals on both backends; times are Unix seconds.
POSTGRESQL_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE clients (
        client_id      TEXT PRIMARY KEY,
        secret_hash    TEXT NOT NULL,
        scopes         TEXT NOT NULL,
        may_introspect SMALLINT NOT NULL DEFAULT 0 CHECK (may_introspect IN (0, 1)),
        created_at     BIGINT NOT NULL,
        disabled       SMALLINT NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
    );
    CREATE TABLE tokens (
        token_hash BYTEA PRIMARY KEY CHECK (octet_length(token_hash) = 32),
        client_id  TEXT NOT NULL REFERENCES clients (client_id),
        scopes     TEXT NOT NULL,
        issued_at  BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        revoked_at BIGINT
    );
    CREATE INDEX tokens_by_expiry ON tokens (expires_at);
    CREATE INDEX tokens_by_client ON tokens (client_id);
    """,
)
