"""The SQLite file: one connection per thread, WAL, and schema migrations on open."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_MS = 5000
CACHE_KIB_PER_CONNECTION = 256

# Each entry moves the schema from version i to i + 1 (PRAGMA user_version). Append, never edit.
MIGRATIONS: tuple[str, ...] = (
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


class Database:
    """Hands each thread its own connection to one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def open(self) -> Database:
        """Create the file if needed and bring its schema up to date."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = self.connection()
        connection.execute("PRAGMA journal_mode = WAL")
        with self.write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
        return self

    def connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; writes use write() below.
        # check_same_thread=False only so close() can close every thread's connection at shutdown.
        connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        connection.row_factory = sqlite3.Row
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA foreign_keys = ON")
        # FULL: a revocation that was answered 200 must survive a power cut too.
        connection.execute("PRAGMA synchronous = FULL")
        # Every worker thread has its own connection and page cache; SQLite's default of 2 MiB
        # each grows with the tokens table to 80 MiB over 40 threads. Look-ups are by primary
        # key and the OS caches the file, so a small cache bounds memory at little cost.
        connection.execute(f"PRAGMA cache_size = -{CACHE_KIB_PER_CONNECTION}")
        return connection

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the lock at its start, so it never fails half-way."""
        connection = self.connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def is_reachable(self) -> bool:
        try:
            self.connection().execute("SELECT 1 FROM clients LIMIT 1").fetchall()
        except sqlite3.Error:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        self._local = threading.local()
