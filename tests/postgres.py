"""A throw-away PostgreSQL cluster for the tests: Debian's server binaries, `initdb` into a
fresh directory, started with `pg_ctl` on a free loopback port, removed at the end.

- As root (CI), the cluster runs as the `postgres` account that Debian's package creates:
  PostgreSQL refuses to run as root. As anyone else, it runs as that user.
- Password authentication (scram-sha-256) even on loopback, so the tests exercise the URL's
  password the way a deployment does.
- `fsync=off`: a throw-away cluster need not survive a power cut; the tests stop it cleanly
  (`restart`, `stop`), which writes everything out either way.

`pytest.skip` with the reason when no server can be started, except in CI, where that is a
failure (CI installs `postgresql`: a skip there would hide a broken install).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.harness import free_port

__all__ = ["PostgresServer", "find_server_binaries", "start_or_skip"]

SUPERUSER = "gateway_test"


def find_server_binaries() -> Path | None:
    """The newest installed server's bin directory (Debian: /usr/lib/postgresql/<v>/bin)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found else None


@dataclass
class PostgresServer:
    bin_dir: Path
    listen: str = "127.0.0.1"
    # Run the server on another host (tests/netns.py: Host.prefix); the test reaches it there.
    host_prefix: list[str] = field(default_factory=list)
    directory: Path = field(init=False)
    port: int = field(init=False, default=0)
    password: str = field(init=False, default_factory=lambda: secrets.token_urlsafe(24))
    _databases: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="pg-test-"))

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def _as_owner(self) -> list[str]:
        if os.geteuid() != 0:
            return self.host_prefix
        setpriv = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--"]
        return [*self.host_prefix, *setpriv]

    def _run(self, *command: str, timeout: float = 60) -> None:
        result = subprocess.run(
            [*self._as_owner(), *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.directory,
        )
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{command[0]} failed: {result.stderr.strip()}\n{log}")

    def init(self) -> PostgresServer:
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        password_file = self.directory / "password"
        password_file.write_text(self.password + "\n")
        if os.geteuid() == 0:
            os.chown(password_file, owner.pw_uid, owner.pw_gid)
        password_file.chmod(0o600)
        self._run(
            str(self.bin_dir / "initdb"),
            "--pgdata",
            str(self.data),
            "--username",
            SUPERUSER,
            "--pwfile",
            str(password_file),
            "--auth",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--no-instructions",
        )
        password_file.unlink()
        return self

    def start(self) -> PostgresServer:
        for _ in range(3):  # another process may take the free port first
            self.port = free_port()
            try:
                self.restart()
                return self
            except RuntimeError:
                continue
        raise RuntimeError(f"PostgreSQL did not start: {self.log.read_text(errors='replace')}")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "--pgdata", str(self.data), "-m", mode, "stop")

    def restart(self) -> None:
        """Start (again) on this port: a stopped server's clients reconnect to it."""
        options = (
            f"-c listen_addresses={self.listen} -c port={self.port}"
            f" -c unix_socket_directories={self.directory} -c fsync=off -c max_connections=200"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "--pgdata",
            str(self.data),
            "--log",
            str(self.log),
            "--options",
            options,
            "--wait",
            "start",
        )

    def url(self, database: str = "postgres") -> str:
        return (
            f"postgresql://{SUPERUSER}:{quote(self.password, safe='')}"
            f"@{self.listen}:{self.port}/{database}"
        )

    def allow(self, network: str) -> None:
        """Let clients from ``network`` (CIDR) in, with the password; takes effect on start."""
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {network} scram-sha-256\n")

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its URL."""
        import psycopg

        self._databases += 1
        name = name or f"test_{self._databases}_{secrets.token_hex(3)}"
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


def start_or_skip(
    listen: str = "127.0.0.1", host_prefix: Sequence[str] = (), allow: str | None = None
) -> PostgresServer:
    """A running cluster, or a skip (a failure in CI) that says why there is none. ``listen``,
    ``host_prefix`` and ``allow`` put it on another host (tests/netns.py) for ``allow``'s
    network."""
    bin_dir = find_server_binaries()
    reason = ""
    if bin_dir is None:
        reason = "no PostgreSQL server installed (scripts/install --postgres installs it)"
    elif os.geteuid() == 0 and not _has_postgres_account():
        reason = "running as root, and there is no postgres account to run the server as"
    else:
        server = PostgresServer(bin_dir, listen, list(host_prefix))
        try:
            server.init()
            if allow is not None:
                server.allow(allow)
            return server.start()
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
            server.remove()
            reason = f"PostgreSQL could not be started: {error}"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _has_postgres_account() -> bool:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True
