"""Least privilege in a running stack: who each program runs as, what it can reach, what it sees.

Started as root (CI), the stack runs everything but supervisord and nginx's master as the stack's
account; its unix sockets are out of reach of any other local account; each program's
environment holds only its own settings (docs/gateway.md, "Privileges").
"""

from __future__ import annotations

import os
import pwd
import socket
import stat
from pathlib import Path

import pytest

from tests.e2e.stack import STACK_USER, Stack, children

pytestmark = pytest.mark.slow

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching accounts needs root (CI)")


def _uids(pid: int) -> set[int]:
    """Real, effective, saved and filesystem uid of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return {int(uid) for uid in line.split()[1:]}
    raise AssertionError(f"no Uid line for {pid}")


def _descendants(pid: int) -> list[int]:
    found = []
    for child in children(pid):
        found += [child, *_descendants(child)]
    return found


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _connects_as(uid: int, gid: int, path: Path) -> bool | str:
    """Whether a process running as uid:gid can connect to the unix socket at ``path``: a forked
    child drops to that account (no supplementary groups) and reports by its exit code."""
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        code = 3
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(2)
                sock.connect(str(path))
            code = 0
        except PermissionError:
            code = 1
        except BaseException:
            code = 2
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    return {0: True, 1: False}.get(code, f"exit code {code}")


def test_run_directory_is_private(gateway: Stack) -> None:
    mode = gateway.run_dir.stat().st_mode
    assert stat.S_IMODE(mode) == 0o700
    owner = pwd.getpwnam(STACK_USER).pw_uid if os.geteuid() == 0 else os.geteuid()
    assert gateway.run_dir.stat().st_uid == owner


def test_auth_database_files_are_private(gateway: Stack) -> None:
    files = [Path(f"{gateway.database}{suffix}") for suffix in ("", "-wal", "-shm")]
    assert files[0].exists()
    for path in files:
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


@as_root
def test_only_supervisord_and_nginx_master_run_as_root(gateway: Stack) -> None:
    assert gateway.process is not None
    supervisord = gateway.process.pid
    nginx_master = gateway.pid_of("nginx")
    stack_uid = pwd.getpwnam(STACK_USER).pw_uid
    processes = _descendants(supervisord)
    assert {gateway.pid_of("app"), gateway.pid_of("auth"), nginx_master} <= set(processes)
    assert children(nginx_master), "nginx has no workers"
    assert _uids(supervisord) == {0}
    assert _uids(nginx_master) == {0}
    for pid in processes:
        if pid != nginx_master:
            assert _uids(pid) == {stack_uid}, (pid, Path(f"/proc/{pid}/cmdline").read_bytes())


@as_root
def test_sockets_are_out_of_reach_of_other_accounts(gateway: Stack) -> None:
    nobody = pwd.getpwnam("nobody")
    stack = pwd.getpwnam(STACK_USER)
    sockets = [gateway.run_dir / name for name in ("app.sock", "auth.sock", "supervisor.sock")]
    for path in sockets:
        assert path.is_socket(), path
        assert _connects_as(nobody.pw_uid, nobody.pw_gid, path) is False, path
    # The control: the stack's own account does reach the app and the auth service.
    for path in sockets[:2]:
        assert _connects_as(stack.pw_uid, stack.pw_gid, path) is True, path


def test_each_program_sees_only_its_own_settings(gateway: Stack) -> None:
    app = _environ(gateway.pid_of("app"))
    auth = _environ(gateway.pid_of("auth"))
    nginx = _environ(gateway.pid_of("nginx"))
    assert "APP_UDS" in app and "AUTH_DATABASE_PATH" in auth
    assert not [name for name in app if name.startswith(("AUTH_", "GATEWAY_"))], sorted(app)
    assert not [name for name in auth if name.startswith(("APP_", "GATEWAY_"))], sorted(auth)
    assert not [name for name in nginx if name.startswith(("APP_", "AUTH_", "GATEWAY_"))]
