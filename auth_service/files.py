"""The database's files: readable by their owner only, and owned by whoever the service runs as.

The file is created 0600 by os.open before SQLite opens it, rather than with a process umask:
the service and the CLI both get it, nothing else in the process (uvicorn's socket, the log)
is affected, and SQLite gives the -wal, -shm and -journal files it creates later the mode and
owner of the database file. The gateway's launcher runs the CLI as root before it drops to the
stack's user, so a file (or directory) that root creates here is handed to the owner of the
directory it is created in; otherwise the service could not open, or SQLite could not create
its -wal next to, a database that root made.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
SIDECAR_SUFFIXES = ("-wal", "-shm", "-journal")

logger = logging.getLogger("auth_service")


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _give_to_owner_of(path: Path, directory: Path) -> None:
    """As root, chown path to directory's owner (a no-op when root owns the directory)."""
    if not _running_as_root():
        return
    owner = directory.stat()
    if owner.st_uid != 0 or owner.st_gid != 0:
        os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)


def make_parent_directories(path: Path) -> None:
    """mkdir -p for path's parent; each directory made as root goes to its parent's owner."""
    missing: list[Path] = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            directory.mkdir()
            _give_to_owner_of(directory, directory.parent)


def create_private_file(path: Path) -> bool:
    """Create path empty and 0600 unless it exists; True if it was created now."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return False
    os.close(descriptor)
    _give_to_owner_of(path, path.parent)
    return True


def _tighten(path: Path) -> None:
    """chmod 0600 a file that others may read or write (made by an older version)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, mode & 0o700)
    except FileNotFoundError:
        return
    except PermissionError:
        logger.warning("cannot make %s private (owned by another user); chmod it 0600", path)


def make_private(database: Path) -> None:
    """The database file and the SQLite files beside it that exist now: owner-only."""
    for path in (database, *(database.with_name(database.name + s) for s in SIDECAR_SUFFIXES)):
        _tighten(path)
