"""A real gateway stack for end-to-end tests: supervisord running nginx, the app and auth."""

from __future__ import annotations

import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.harness import free_port, wait_until

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SUPERVISORD_CONF = PROJECT_ROOT / "supervisord.conf"
ALL_SCOPES = (
    "detect,vae,classify,models:read,models:admin,infer:detector,infer:vae,infer:classifier"
)
# Started as root, scripts/gateway-exec runs the app, the auth service and nginx's workers as
# this account (docs/gateway.md, "Privileges").
STACK_USER = os.environ.get("GATEWAY_USER", "gateway")


def is_listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kib(pid: int) -> int:
    """RSS of a process and all its descendants (nginx's master and its workers)."""
    return _rss_kib(pid) + sum(tree_rss_kib(child) for child in children(pid))


def raw_request(
    port: int, request_line: str, headers: list[tuple[str, str]]
) -> tuple[int, dict[str, str], str]:
    """One request written byte for byte (headers that httpx would refuse or merge: control
    bytes, duplicates); returns the status, the response headers (lower-case names) and the
    body."""
    lines = [request_line, "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "surrogateescape"))
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in header_lines)
    return (
        int(status_line.split()[1]),
        {k.lower(): v for k, v in fields.items()},
        body.decode(errors="replace"),
    )


def grant_stack_user(path: Path) -> None:
    """Lets the stack's account use ``path`` when the tests run as root: pytest's temporary
    directories are 0700 and root's, so that account gets search permission on the directories
    above (an ACL, as scripts/install gives it on the checkout's) and ownership of ``path`` and
    everything in it. Nothing to do for any other user: the stack then runs as that user."""
    if os.geteuid() != 0:
        return
    account = pwd.getpwnam(STACK_USER)
    for directory in reversed(path.resolve().parents):
        if not directory.stat().st_mode & 0o001:
            subprocess.run(["setfacl", "-m", f"u:{STACK_USER}:x", str(directory)], check=True)
    for entry in [path, *path.rglob("*")]:
        os.chown(entry, account.pw_uid, account.pw_gid, follow_symlinks=False)


def create_client(database: Path | str, client_id: str, scopes: str, *options: str) -> str:
    """Registers a client with the auth CLI (``options``: e.g. "--introspect"); returns its
    secret."""
    command = ["clients", "create", "--id", client_id, "--scopes", scopes, *options]
    result = subprocess.run(
        [sys.executable, "-m", "auth_service", "--database", str(database), *command],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    for line in result.stdout.splitlines():
        if line.startswith("client_secret:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no secret in the CLI output: {result.stdout!r}")


@dataclass
class Stack:
    """One supervisord process group; every path lives under ``base``."""

    base: Path
    cache_seconds: int = 2
    token_ttl_seconds: int = 3600
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)  # the internal metrics listener
    extra_env: dict[str, str] = field(default_factory=dict)  # GATEWAY_/APP_/AUTH_ overrides
    database_url: str | None = None  # a PostgreSQL store instead of the SQLite file
    host: str = "127.0.0.1"  # the address nginx listens on
    prefix: tuple[str, ...] = ()  # run supervisord through it (another host: tests/netns.py)
    process: subprocess.Popen[bytes] | None = None
    secrets: dict[str, str] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.base / "run"

    @property
    def database(self) -> Path | str:
        return self.database_url or self.base / "auth.sqlite3"

    @property
    def stdout_path(self) -> Path:
        return self.base / "supervisord.stdout"

    @property
    def stderr_path(self) -> Path:
        return self.base / "supervisord.stderr"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("GATEWAY_", "APP_", "AUTH_"))
        }
        env.update(
            GATEWAY_RUN_DIR=str(self.run_dir),
            GATEWAY_LISTEN=f"{self.host}:{self.port}",
            GATEWAY_METRICS_LISTEN=f"127.0.0.1:{self.metrics_port}",
            GATEWAY_AUTH_CACHE_SECONDS=str(self.cache_seconds),
            GATEWAY_TOKEN_RATE="50r/s",
            GATEWAY_PYTHON=sys.executable,
            **{
                "AUTH_DATABASE_URL" if self.database_url else "AUTH_DATABASE_PATH": str(
                    self.database
                )
            },
            AUTH_TOKEN_TTL_SECONDS=str(self.token_ttl_seconds),
            APP_POLL_INTERVAL_S="0",
        )
        env.update(self.extra_env)
        return env

    def add_client(self, client_id: str, scopes: str, *options: str) -> None:
        self.secrets[client_id] = create_client(self.database, client_id, scopes, *options)

    def start(self, timeout: float = 90, interval: float = 0.25) -> float:
        """Starts supervisord and waits for /readyz; returns the seconds from spawn to its 200
        (to within ``interval``)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        grant_stack_user(self.base)
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            started = time.perf_counter()
            self.process = subprocess.Popen(
                [*self.prefix, str(VENV_BIN / "supervisord"), "-c", str(SUPERVISORD_CONF), "-n"],
                cwd=PROJECT_ROOT,
                env=self.env(),
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group: teardown can check it is empty
            )
        if not wait_until(self.is_ready, timeout, interval=interval):
            self.stop()
            raise AssertionError(f"the gateway did not become ready:\n{self.output()[-4000:]}")
        return time.perf_counter() - started

    def is_ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM to supervisord; returns its exit code (or raises if it did not exit)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
            raise

    def group_is_empty(self) -> bool:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return True
        return False

    def ctl(self, *args: str) -> str:
        result = subprocess.run(
            [str(VENV_BIN / "supervisorctl"), "-c", str(SUPERVISORD_CONF), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        return result.stdout

    def pid_of(self, program: str, timeout: float = 10) -> int:
        """The program's pid, once supervisord reports it: "app  RUNNING   pid 1234, uptime
        0:00:05". A program stays STARTING, without a pid in that line, for its first second
        (startsecs=1), which can still be so when the stack has just become ready."""
        words: list[str] = []

        def reported() -> bool:
            words[:] = self.ctl("status", program).replace(",", " ").split()
            return "pid" in words

        assert wait_until(reported, timeout, interval=0.2), f"{program}: {' '.join(words)}"
        return int(words[words.index("pid") + 1])

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output(self) -> str:
        return self.stdout() + self.stderr()

    def lines_with(self, *parts: str, timeout: float = 5) -> list[str]:
        """The output lines containing every one of ``parts``, waiting for at least one."""
        found: list[str] = []

        def logged() -> bool:
            lines = self.output().splitlines()
            found[:] = [line for line in lines if all(part in line for part in parts)]
            return bool(found)

        wait_until(logged, timeout)
        return found

    def access_log(self) -> Iterator[dict[str, object]]:
        for line in self.stdout().splitlines():
            if line.startswith('{"time":"') and '"auth_cache"' in line:
                yield json.loads(line)

    def access_record(self, request_id: str, timeout: float = 5) -> dict[str, object]:
        found: list[dict[str, object]] = []

        def logged() -> bool:
            found[:] = [r for r in self.access_log() if r["request_id"] == request_id]
            return bool(found)

        assert wait_until(logged, timeout), f"no access log line for {request_id}"
        return found[-1]

    def token(self, client_id: str, scope: str | None = None) -> str:
        data = {"grant_type": "client_credentials"}
        if scope is not None:
            data["scope"] = scope
        response = httpx.post(
            f"{self.url}/oauth2/token",
            data=data,
            auth=(client_id, self.secrets[client_id]),
            timeout=10,
        )
        assert response.status_code == 200, response.text
        return response.json()["access_token"]
