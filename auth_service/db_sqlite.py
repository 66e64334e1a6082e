"""The SQLite backend: one file, a bounded pool of connections, WAL, migrations on open.

The embedded default (one store per gateway). Connections are lent as plain
``sqlite3.Connection`` objects; driver errors leave this module as db.py's errors.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from auth_service.db import DEFAULT_POOL_SIZE, ConstraintError, StoreUnavailableError
from auth_service.files import create_private_file, make_parent_directories, make_private
from auth_service.migrations import SQLITE_MIGRATIONS

BUSY_TIMEOUT_MS = 5000
CACHE_KIB_PER_CONNECTION = 256


class PoolExhaustedError(StoreUnavailableError):
    """Every connection stayed in use for the whole busy timeout."""


@contextmanager
def _translated_errors() -> Iterator[None]:
    try:
        yield
    except sqlite3.IntegrityError as error:
        raise ConstraintError(str(error)) from error
    except sqlite3.OperationalError as error:  # locked, read-only, disk full, not a database
        raise StoreUnavailableError(str(error)) from error


class SQLiteDatabase:
    """A bounded pool of connections to one SQLite file.

    Worker threads come and go (anyio retires idle ones after 10 s), so connections belong to
    the pool, not to a thread: their number, file descriptors and page caches stay bounded
    however many threads the service has used. Writers take turns on a lock before they borrow
    a connection (SQLite has one writer at a time anyway), so at most one connection waits for
    the file's write lock and the others stay free for reads, which in WAL mode never wait:
    the token check borrows one on the event loop.
    """

    def __init__(self, path: Path, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        self.path = path
        self.pool_size = pool_size
        self.description = f"sqlite:{path}"
        self._idle: list[sqlite3.Connection] = []  # a stack: the warmest one is lent first
        self._opened = 0  # idle, lent, or being opened
        self._changed = threading.Condition(threading.Lock())
        self._write_turn = threading.Lock()

    # In WAL mode readers never wait for the writer: a token check reads on the event loop.
    io_may_block = False

    def open(self) -> SQLiteDatabase:
        """Create the file if needed (0600, see files.py) and bring its schema up to date.

        The schema's version is the file's PRAGMA user_version; SQLITE_MIGRATIONS[i] moves it
        from i to i + 1, all in one write transaction (SQLite's DDL is transactional)."""
        make_parent_directories(self.path)
        create_private_file(self.path)
        with self.connection() as connection:
            connection.execute("PRAGMA journal_mode = WAL")
        with self.write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(SQLITE_MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")
        make_private(self.path)  # also files that an older version left 0644
        return self

    @property
    def open_connections(self) -> int:
        return self._opened

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """Lend a connection to the calling thread; it goes back to the pool afterwards."""
        with _translated_errors():  # e.g. a file that cannot be opened
            connection = self._borrow()
        try:
            with _translated_errors():
                yield connection
        finally:
            self._give_back(connection)

    def _borrow(self) -> sqlite3.Connection:
        # One lock for the count and the idle stack: the token check borrows on every request,
        # and a semaphore plus a queue would take two locks and two conditions each way.
        with self._changed:
            if not self._changed.wait_for(
                lambda: self._idle or self._opened < self.pool_size, BUSY_TIMEOUT_MS / 1000
            ):
                raise PoolExhaustedError(f"all {self.pool_size} database connections are in use")
            if self._idle:
                return self._idle.pop()
            self._opened += 1  # a place for the one opened below, outside the lock
        try:
            return self._connect()
        except BaseException:
            self._forget_one()
            raise

    def _give_back(self, connection: sqlite3.Connection) -> None:
        try:
            if connection.in_transaction:  # e.g. after a COMMIT that failed
                connection.rollback()
        except sqlite3.Error:
            connection.close()  # one that cannot even roll back is not lent again
            self._forget_one()
            return
        with self._changed:
            self._idle.append(connection)
            self._changed.notify()

    def _forget_one(self) -> None:
        with self._changed:
            self._opened -= 1
            self._changed.notify()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; writes use write() below.
        # check_same_thread=False: a pooled connection serves one thread at a time, any thread.
        connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        try:
            connection.row_factory = sqlite3.Row
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA foreign_keys = ON")
            # FULL: a revocation that was answered 200 must survive a power cut too.
            connection.execute("PRAGMA synchronous = FULL")
            # Look-ups are by primary key and the OS caches the file: a small page cache per
            # connection bounds memory at little cost (SQLite's default is 2 MiB).
            connection.execute(f"PRAGMA cache_size = -{CACHE_KIB_PER_CONNECTION}")
        except BaseException:
            connection.close()
            raise
        return connection

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the lock at its start, so it never fails half-way.

        If the block raises, or COMMIT fails, the transaction is rolled back as the connection
        goes back to the pool.
        """
        if not self._write_turn.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
            raise StoreUnavailableError("database is locked")
        try:
            with self.connection() as connection:
                connection.execute("BEGIN IMMEDIATE")
                yield connection
                connection.execute("COMMIT")
        finally:
            self._write_turn.release()

    def is_reachable(self) -> bool:
        try:
            with self.connection() as connection:
                connection.execute("SELECT 1 FROM clients LIMIT 1").fetchall()
        except (sqlite3.Error, StoreUnavailableError):
            return False
        return True

    def close(self) -> None:
        """Close the idle connections (at shutdown, when no request is using one)."""
        with self._changed:
            idle, self._idle = self._idle, []
            self._opened -= len(idle)
            self._changed.notify_all()
        for connection in idle:
            connection.close()
