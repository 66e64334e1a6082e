"""The token store's database: one interface, two backends (SQLite, PostgreSQL).

``AUTH_DATABASE_URL`` picks the backend (see ``DatabaseTarget``): a SQLite file is the embedded
default, one per gateway; PostgreSQL is the store that several auth service replicas share
(docs/auth.md, "PostgreSQL"). The store (store.py) writes its SQL once, with ``?`` placeholders
and SQL that both dialects accept; each backend translates what differs (placeholders, error
classes, schema migrations) so nothing above this module knows which one it is talking to.

Both backends raise only the errors below, so the routes map one error to one status code:
``StoreUnavailableError`` is a 503 (retry later), never a 500.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool

__all__ = [
    "DEFAULT_POOL_SIZE",
    "DEFAULT_TIMEOUT_SECONDS",
    "ConstraintError",
    "Cursor",
    "Database",
    "DatabaseTarget",
    "StoreError",
    "StoreUnavailableError",
    "open_database",
    "run_io",
]

T = TypeVar("T")

DEFAULT_POOL_SIZE = 4
# How long a request waits for a connection, or PostgreSQL for a statement, before the store
# counts as unavailable (503): a client is better off retrying than waiting.
DEFAULT_TIMEOUT_SECONDS = 5.0
POSTGRESQL_SCHEMES = ("postgresql", "postgres")
SQLITE_PREFIX = "sqlite:///"


class StoreError(Exception):
    """The database refused a statement."""


class StoreUnavailableError(StoreError):
    """The database cannot be used now (unreachable, read-only, full, every connection busy,
    a statement timed out): the caller may retry later."""


class ConstraintError(StoreError):
    """A statement broke a constraint (e.g. a client id that is taken)."""


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = ...) -> Cursor: ...


class Database(Protocol):
    """What the store needs of a backend. Rows are read by column name (``row["scopes"]``)."""

    # Whether a read may wait on the network or a lock. SQLite in WAL mode: no, so the token
    # check reads on the event loop; PostgreSQL: yes, so every read goes to a worker thread.
    io_may_block: bool
    description: str  # for logs: the path, or the URL without its password

    def open(self) -> Database: ...

    def connection(self) -> AbstractContextManager[Connection]: ...

    def write(self) -> AbstractContextManager[Connection]: ...

    def is_reachable(self) -> bool: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class DatabaseTarget:
    """Where the store lives: a SQLite file, or a PostgreSQL URL (which may hold a password,
    so it is never printed: ``description`` leaves the password out)."""

    sqlite_path: Path | None = None
    postgresql_url: str | None = None

    @classmethod
    def parse(cls, value: str) -> DatabaseTarget:
        """``postgresql://...`` (or ``postgres://``), ``sqlite:///PATH``, or a plain file path."""
        scheme = value.partition("://")[0].lower() if "://" in value else ""
        if scheme in POSTGRESQL_SCHEMES:
            return cls(postgresql_url=value)
        if value.startswith(SQLITE_PREFIX):
            value = value.removeprefix(SQLITE_PREFIX)  # sqlite:////abs/path is absolute
        elif scheme:
            raise ValueError(
                f"unsupported database URL scheme {scheme!r}: use postgresql://..., "
                "sqlite:///PATH or a file path"
            )
        if not value:
            raise ValueError("the SQLite path is empty")
        return cls(sqlite_path=Path(value))

    @property
    def description(self) -> str:
        if self.sqlite_path is not None:
            return f"sqlite:{self.sqlite_path}"
        parts = urlsplit(self.postgresql_url or "")
        host = parts.hostname or "local socket"
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username else ""
        return f"postgresql://{user}{host}{port}{parts.path}"


def open_database(
    target: DatabaseTarget,
    pool_size: int = DEFAULT_POOL_SIZE,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> Database:
    """The backend for a target, not yet opened (``open()`` creates and migrates the schema)."""
    if target.postgresql_url is not None:
        # Imported here: the SQLite default needs no PostgreSQL driver at all.
        from auth_service.db_postgres import PostgresDatabase

        return PostgresDatabase(
            target.postgresql_url, pool_size, timeout_seconds, description=target.description
        )
    from auth_service.db_sqlite import SQLiteDatabase

    assert target.sqlite_path is not None
    return SQLiteDatabase(target.sqlite_path, pool_size)


async def run_io(database: Database, function: Callable[..., T], *args: Any) -> T:
    """Call a function that uses the database from the event loop: inline when the backend's
    reads never wait (a thread hop would cost more than the read), else in a worker thread, so a
    slow or unreachable server stalls one request, not the loop."""
    if database.io_may_block:
        return await run_in_threadpool(function, *args)
    return function(*args)
