"""The database and its -wal and -shm files are the owner's only, and root hands them over."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from auth_service.db_sqlite import SQLiteDatabase as Database

from .conftest import ServerFactory
from .support import create_client, token_for

SIDECARS = ("-wal", "-shm")


def _files(database: Path) -> list[Path]:
    return [database, *(database.with_name(database.name + suffix) for suffix in SIDECARS)]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> object:
    """The usual 022, whatever the test runner has: the files must not depend on it."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_the_running_service_keeps_all_three_files_private(
    tmp_path: Path, start_server: ServerFactory
) -> None:
    database = tmp_path / "var" / "auth.sqlite3"
    server = start_server(database)  # the service creates the file and its directory
    with server.http() as http:
        http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=("a", "b"))
        files = _files(database)
        assert all(path.exists() for path in files)  # WAL mode: open while the service runs
        assert {path.name: _mode(path) for path in files} == {path.name: 0o600 for path in files}


def test_the_cli_creates_a_private_database(tmp_path: Path, start_server: ServerFactory) -> None:
    database = tmp_path / "cli.sqlite3"
    svc = create_client(database, "svc", "detect")
    assert _mode(database) == 0o600
    server = start_server(database)
    with server.http() as http:
        token_for(http, svc)
        assert [_mode(path) for path in _files(database)] == [0o600] * 3


def test_a_world_readable_database_of_an_older_version_is_made_private(tmp_path: Path) -> None:
    database = Database(tmp_path / "old.sqlite3").open()
    database.close()
    os.chmod(database.path, 0o644)
    reopened = Database(database.path).open()
    with reopened.connection():
        assert [_mode(path) for path in _files(database.path)] == [0o600] * 3
    reopened.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can hand files to another user")
def test_root_gives_what_it_creates_to_the_directorys_owner(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    nobody = 65534
    os.chown(home, nobody, nobody)
    path = home / "var" / "auth.sqlite3"
    database = Database(path).open()
    with database.connection():
        created = [path.parent, *_files(path)]
        assert {(p.name, p.stat().st_uid, p.stat().st_gid) for p in created} == {
            (p.name, nobody, nobody) for p in created
        }
        assert [_mode(p) for p in _files(path)] == [0o600] * 3
    database.close()
