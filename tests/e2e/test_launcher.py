"""scripts/gateway-exec: the runtime includes it writes, and the values it refuses."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import NGINX
from tests.e2e.stack import PROJECT_ROOT

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
    check = subprocess.run(
        [NGINX, "-t", "-q", "-p", f"{prefix}/", "-c", "nginx.conf", "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stderr


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
        ("GATEWAY_APP_UPSTREAM", "unix:relative.sock"),
        ("GATEWAY_AUTH_UPSTREAM", "host:80;evil"),
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
