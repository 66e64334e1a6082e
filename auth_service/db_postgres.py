"""The PostgreSQL backend: the store that several auth service replicas share.

psycopg 3 with its own pool (psycopg_pool): the pool is what a service needs of a database
library (bounded size, a wait with a timeout, connections checked before they are lent, so one
that a server restart broke is replaced rather than failing a request), and the store's SQL is
plain enough that an abstraction over dialects would add a layer and no safety.

- Every connection is in autocommit mode: a read is one round trip; ``write()`` wraps its
  statements in one transaction.
- Statements run with a ``statement_timeout``, and waiting for a connection is bounded by the
  same timeout: a stuck server turns into ``StoreUnavailableError`` (503), not a hung request.
- The store's SQL uses ``?`` placeholders (SQLite's); they become ``%s`` here. The store never
  has a literal ``?`` or ``%`` in its SQL (store.py says so).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from auth_service.db import ConstraintError, Cursor, StoreUnavailableError
from auth_service.migrations import POSTGRESQL_MIGRATIONS

# Any constant will do: replicas that start together take this lock, and one migrates.
MIGRATION_LOCK_ID = 0x6D67_7761_7900  # "mgway"
# While the server is known to be unreachable, a request waits this long for a connection, not
# the whole timeout: a down database answers 503 at once instead of piling requests up in the
# worker threads. The pool keeps reconnecting in the background; the first request that gets a
# connection marks the server reachable again.
UNREACHABLE_WAIT_SECONDS = 0.25
# The pool's reconnection backs off exponentially (1 s, 2 s, 4 s...) with no ceiling, and gives
# up after this long; the next request then starts a fresh attempt. Bounds the time from the
# server's return to the first connection at a few seconds, however long it was away.
RECONNECT_GIVE_UP_SECONDS = 8.0


@functools.lru_cache(maxsize=256)
def _pyformat(sql: str) -> str:
    return sql.replace("?", "%s")


class _Connection:
    """A pooled psycopg connection that speaks the store's placeholder style."""

    __slots__ = ("_connection",)

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Cursor:
        return self._connection.execute(_pyformat(sql), parameters)


@contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except psycopg.errors.IntegrityError as error:
        raise ConstraintError(error.diag.message_primary or str(error)) from error
    except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as error:
        # Unreachable, shutting down, statement timeout, no connection free within the timeout.
        # The message is libpq's: it names the host and port, never the password.
        raise StoreUnavailableError(str(error).strip() or type(error).__name__) from error


class PostgresDatabase:
    io_may_block = True

    def __init__(
        self, url: str, pool_size: int, timeout_seconds: float, *, description: str
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.description = description
        self.pool_size = pool_size
        self.timeout_seconds = timeout_seconds
        self._reachable = True  # a plain flag: a stale read costs one request its wait, no more
        timeout_ms = round(timeout_seconds * 1000)
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            timeout=timeout_seconds,
            open=False,
            # One query per lend ("SELECT 1" on an idle connection): after PostgreSQL restarts,
            # stale connections are dropped here instead of failing the requests that get them.
            check=ConnectionPool.check_connection,
            reconnect_timeout=RECONNECT_GIVE_UP_SECONDS,
            name="auth_service",
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": max(1, round(timeout_seconds)),
                "application_name": "auth_service",
                "options": f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}",
            },
        )

    def open(self) -> PostgresDatabase:
        """Connect (waiting up to the timeout) and bring the schema up to date.

        The version is the highest row of ``schema_migrations``; replicas that start at once
        serialise on an advisory lock that lives as long as the migration's transaction.
        """
        with _translated_errors():
            self._pool.open(wait=True, timeout=self.timeout_seconds)
        with self.write() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK_ID,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            version = conn.execute(
                "SELECT coalesce(max(version), 0) AS version FROM schema_migrations"
            ).fetchone()["version"]
            for number, script in enumerate(POSTGRESQL_MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations (version) VALUES (?)", (number,))
        return self

    @property
    def open_connections(self) -> int:
        return self._pool.get_stats().get("pool_size", 0)

    @contextmanager
    def _lend(self) -> Iterator[psycopg.Connection[Any]]:
        wait = self.timeout_seconds if self._reachable else UNREACHABLE_WAIT_SECONDS
        with _translated_errors():
            try:
                connection = self._pool.getconn(timeout=wait)
            except (PoolTimeout, psycopg.OperationalError):
                self._reachable = False
                raise
            self._reachable = True
            try:
                yield connection
            finally:
                self._pool.putconn(connection)  # rolls back what is left open, drops a broken one

    @contextmanager
    def connection(self) -> Iterator[_Connection]:
        with self._lend() as connection:
            yield _Connection(connection)

    @contextmanager
    def write(self) -> Iterator[_Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._lend() as connection, connection.transaction():
            yield _Connection(connection)

    def is_reachable(self) -> bool:
        try:
            with self.connection() as connection:
                connection.execute("SELECT 1 FROM clients LIMIT 1").fetchall()
        except (StoreUnavailableError, psycopg.Error):
            return False
        return True

    def close(self) -> None:
        self._pool.close()
