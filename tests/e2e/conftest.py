"""Fixtures for the end-to-end tests: real supervisord, nginx, app and auth service on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import browser_page, chromium_browser
from tests.e2e.stack import ALL_SCOPES, Stack, wait_until

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def assert_nginx_accepts(prefix: Path) -> None:
    """`nginx -t` on the config that scripts/gateway-exec rendered under ``prefix``."""
    check = subprocess.run(
        [NGINX, "-t", "-q", "-p", f"{prefix}/", "-c", "nginx.conf", "-e", "stderr"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, check.stderr


def _require_nginx() -> None:
    if not Path(NGINX).exists():
        reason = "nginx is not installed (scripts/install --system installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI installs nginx: a skip there would hide a broken install
        pytest.skip(reason)


def running_stack(base: Path, **options: Any) -> Iterator[Stack]:
    """Starts a stack with the clients "full" (every scope) and "narrow" (detect only); on
    teardown stops it with SIGTERM and checks that it exited cleanly and left nothing behind."""
    _require_nginx()
    stack = Stack(base, **options)
    stack.run_dir.mkdir(parents=True)
    stack.add_client("full", ALL_SCOPES)
    stack.add_client("narrow", "detect")
    stack.start()
    try:
        yield stack
    finally:
        code = stack.stop()
        assert code == 0, stack.output()[-2000:]
        assert wait_until(stack.group_is_empty, 5), "processes left behind"
        assert not stack.is_ready()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from running_stack(tmp_path_factory.mktemp("gateway"), cache_seconds=2)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian chromium through Playwright (tests/e2e/browser.py)."""
    yield from chromium_browser()


@pytest.fixture
def page(browser: Any, gateway: Stack) -> Iterator[Any]:
    """A fresh browser page on the session's gateway."""
    yield from browser_page(browser, gateway.url)
