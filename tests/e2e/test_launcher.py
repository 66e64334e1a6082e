"""scripts/gateway-exec: the runtime includes it writes, and the values it refuses."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import NGINX, assert_nginx_accepts
from tests.e2e.stack import PROJECT_ROOT, STACK_USER, grant_stack_user

LAUNCHER = PROJECT_ROOT / "scripts" / "gateway-exec"


def _launch(run_dir: Path, program: str, **env: str) -> subprocess.CompletedProcess[str]:
    # GATEWAY_NGINX=true: everything but the final exec of nginx (true ignores the arguments).
    environment = {**os.environ, "GATEWAY_RUN_DIR": str(run_dir), "GATEWAY_NGINX": "true", **env}
    return subprocess.run(
        [str(LAUNCHER), program], env=environment, capture_output=True, text=True, timeout=30
    )


def test_nginx_config_is_valid_with_the_rendered_includes(tmp_path: Path) -> None:
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed")
    result = _launch(tmp_path, "nginx", GATEWAY_LISTEN="127.0.0.1:18999")
    assert result.returncode == 0, result.stderr
    prefix = tmp_path / "nginx"
    runtime = prefix / "runtime"
    assert (runtime / "listen.conf").read_text() == "listen 127.0.0.1:18999;\n"
    assert (runtime / "app-servers.conf").read_text() == (
        f"server unix:{tmp_path}/app.sock max_fails=0;\n"
    )
    assert (runtime / "auth-cache.conf").read_text() == "proxy_cache_valid 200 401 403 5s;\n"
    assert (prefix / "nginx.conf").resolve() == PROJECT_ROOT / "nginx" / "nginx.conf"
    assert_nginx_accepts(prefix)


def test_several_upstream_servers(tmp_path: Path) -> None:
    result = _launch(tmp_path, "nginx", GATEWAY_APP_UPSTREAM="app:8000, 10.0.0.7:8000")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "nginx" / "runtime" / "app-servers.conf").read_text() == (
        "server app:8000 max_fails=0;\nserver 10.0.0.7:8000 max_fails=0;\n"
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GATEWAY_LISTEN", "8080; include /etc/passwd"),
        ("GATEWAY_AUTH_CACHE_SECONDS", "5s"),
        ("GATEWAY_TOKEN_RATE", "lots"),
        ("GATEWAY_CLIENT_AUTH_RATE", "10r/s; evil"),
        ("GATEWAY_NGINX_JS_MODULE", "/tmp/x.so; load_module /evil.so"),
        ("GATEWAY_APP_UPSTREAM", "unix:relative.sock"),
        ("GATEWAY_AUTH_UPSTREAM", "host:80;evil"),
        ("GATEWAY_METRICS_LISTEN", "9180; include /etc/passwd"),
    ],
)
def test_invalid_values_are_refused(tmp_path: Path, name: str, value: str) -> None:
    result = _launch(tmp_path, "nginx", **{name: value})
    assert result.returncode == 2
    assert name in result.stderr


def test_unknown_program_is_refused(tmp_path: Path) -> None:
    result = _launch(tmp_path, "redis")
    assert result.returncode == 2
    assert "usage" in result.stderr


def test_authentication_is_on_by_default(tmp_path: Path) -> None:
    assert _launch(tmp_path, "nginx").returncode == 0
    runtime = tmp_path / "nginx" / "runtime"
    assert (runtime / "auth-request.conf").read_text() == "auth_request /_auth;\n"


def test_bench_no_auth_mode_only_on_loopback_and_loudly(tmp_path: Path) -> None:
    result = _launch(tmp_path, "nginx", GATEWAY_BENCH_NO_AUTH="1", GATEWAY_LISTEN="127.0.0.1:18999")
    assert result.returncode == 0, result.stderr
    assert "authentication is OFF" in result.stderr
    runtime = tmp_path / "nginx" / "runtime"
    assert (runtime / "auth-request.conf").read_text() == "auth_request off;\n"


@pytest.mark.parametrize(
    ("listen", "value"),
    [
        ("8080", "1"),  # all interfaces (the container's setting)
        ("0.0.0.0:8080", "1"),
        ("192.168.1.5:8080", "1"),
        ("[::1]:8080", "1"),
        ("127.0.0.1:8080", "yes"),
    ],
)
def test_bench_no_auth_mode_is_refused_elsewhere(tmp_path: Path, listen: str, value: str) -> None:
    result = _launch(tmp_path, "nginx", GATEWAY_BENCH_NO_AUTH=value, GATEWAY_LISTEN=listen)
    assert result.returncode == 2
    assert "GATEWAY_BENCH_NO_AUTH" in result.stderr
    assert not (tmp_path / "nginx" / "runtime" / "auth-request.conf").exists()


def test_rate_limits_and_the_js_module_are_rendered(tmp_path: Path) -> None:
    result = _launch(tmp_path, "nginx", GATEWAY_TOKEN_RATE="5r/s", GATEWAY_CLIENT_AUTH_RATE="7r/m")
    assert result.returncode == 0, result.stderr
    runtime = tmp_path / "nginx" / "runtime"
    assert (runtime / "rate-limits.conf").read_text() == (
        "limit_req_zone $binary_remote_addr zone=token_endpoint:1m rate=5r/s;\n"
        "limit_req_zone $binary_remote_addr zone=client_auth:1m rate=7r/m;\n"
    )
    assert (runtime / "modules.conf").read_text().startswith("load_module /")
    assert (tmp_path / "nginx" / "auth_cache.js").resolve() == (
        PROJECT_ROOT / "nginx" / "auth_cache.js"
    )


def test_without_njs_nginx_does_not_start(tmp_path: Path) -> None:
    """The auth cache's key is hashed by njs: without the module the gateway fails closed."""
    result = _launch(tmp_path, "nginx", GATEWAY_NGINX_JS_MODULE=str(tmp_path / "none.so"))
    assert result.returncode == 2
    assert "GATEWAY_NGINX_JS_MODULE" in result.stderr
    assert not (tmp_path / "nginx" / "runtime" / "modules.conf").exists()


def _program_report(tmp_path: Path, program: str, **env: str) -> dict[str, str]:
    """Runs gateway-exec app|auth with a stand-in interpreter that reports its environment
    and its uid instead of serving."""
    report = tmp_path / "report"
    report.mkdir()
    python = report / "python"
    python.write_text('#!/bin/sh\nenv > "$(dirname "$0")/env"\nid -u > "$(dirname "$0")/uid"\n')
    python.chmod(0o755)
    grant_stack_user(tmp_path)
    result = _launch(
        tmp_path / "run",
        program,
        GATEWAY_PYTHON=str(python),
        AUTH_DATABASE_PATH=str(tmp_path / "db" / "auth.sqlite3"),
        **env,
    )
    assert result.returncode == 0, result.stderr
    lines = (report / "env").read_text().splitlines()
    found = dict(line.split("=", 1) for line in lines if "=" in line)
    found["uid"] = (report / "uid").read_text().strip()
    return found


@pytest.mark.parametrize(
    ("program", "own", "foreign"), [("app", "APP_", "AUTH_"), ("auth", "AUTH_", "APP_")]
)
def test_each_program_gets_only_its_own_environment(
    tmp_path: Path, program: str, own: str, foreign: str
) -> None:
    secret = "Zr4f0u8Xy2QmVb7nKp1sLw9TgHc3Ed6A"
    found = _program_report(
        tmp_path,
        program,
        AUTH_BOOTSTRAP_CLIENT_SECRET=secret,
        APP_LOG_LEVEL="info",
        GATEWAY_LISTEN="127.0.0.1:18999",
        UNRELATED_SECRET="x",
    )
    assert [name for name in found if name.startswith(own)]
    assert not [name for name in found if name.startswith((foreign, "GATEWAY_", "UNRELATED_"))]
    assert (secret in found.values()) == (program == "auth")
    expected = pwd.getpwnam(STACK_USER).pw_uid if os.geteuid() == 0 else os.geteuid()
    assert found["uid"] == str(expected)


def test_the_metrics_listener_is_internal_or_off(tmp_path: Path) -> None:
    """Its own port, on loopback unless set otherwise; never the public one; or off."""
    result = _launch(tmp_path, "nginx", GATEWAY_LISTEN="127.0.0.1:18999")
    assert result.returncode == 0, result.stderr
    metrics = (tmp_path / "nginx" / "runtime" / "metrics.conf").read_text()
    assert "listen 127.0.0.1:9180;" in metrics and "include metrics-server.conf;" in metrics
    # nginx's compact access lines go to the access-metrics program's socket, which the
    # listener's /metrics/nginx reads back through an upstream of its own.
    access_log = (tmp_path / "nginx" / "runtime" / "access-metrics-log.conf").read_text()
    assert f"access_log syslog:server=unix:{tmp_path}/access-log.sock," in access_log
    assert f"server unix:{tmp_path}/access-metrics.sock;" in metrics
    same = _launch(
        tmp_path, "nginx", GATEWAY_LISTEN="127.0.0.1:18999", GATEWAY_METRICS_LISTEN="18999"
    )
    assert same.returncode == 2 and "needs a port of its own" in same.stderr
    off = _launch(tmp_path, "nginx", GATEWAY_LISTEN="127.0.0.1:18999", GATEWAY_METRICS_LISTEN="off")
    assert off.returncode == 0, off.stderr
    assert "server" not in (tmp_path / "nginx" / "runtime" / "metrics.conf").read_text()
    assert (
        "access_log" not in (tmp_path / "nginx" / "runtime" / "access-metrics-log.conf").read_text()
    )
    if Path(NGINX).exists():
        assert_nginx_accepts(tmp_path / "nginx")
