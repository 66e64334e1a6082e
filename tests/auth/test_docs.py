"""docs/auth.md: its quick start runs as written, and its settings table is complete."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from auth_service.settings import AuthSettings

from .support import PYTHON, REPO_ROOT, AuthServer, clean_environment

DOC = REPO_ROOT / "docs" / "auth.md"


def _block(marker: str) -> str:
    """The fenced code block right after ``<!-- docs-test: marker -->``."""
    match = re.search(
        rf"<!-- docs-test: {re.escape(marker)} -->\n```\w*\n(.*?)```", DOC.read_text(), re.DOTALL
    )
    assert match, f"no docs-test block {marker!r} in {DOC}"
    return match.group(1)


def _run_bash(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    path = f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=clean_environment(PATH=path, PYTHONPATH=str(REPO_ROOT), **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.skipif(shutil.which("curl") is None, reason="the documented examples use curl")
def test_the_quick_start_works_as_documented(tmp_path: Path) -> None:
    admin = _run_bash(_block("admin"), tmp_path)
    secrets = re.findall(r"^client_secret: (\S+)$", admin.stdout, re.MULTILINE)
    assert len(secrets) == 2
    assert re.search(r"^demo\s+classify detect\s+no\s+no", admin.stdout, re.MULTILINE)

    server = AuthServer(tmp_path / "var" / "auth.sqlite3", tmp_path / "server.log").start()
    try:
        requests = _run_bash(
            _block("requests"),
            tmp_path,
            AUTH_URL=server.url,
            CLIENT_ID="demo",
            CLIENT_SECRET=secrets[0],
            ADMIN_ID="gateway-admin",
            ADMIN_SECRET=secrets[1],
        )
    finally:
        server.stop()
    assert requests.stdout == _block("requests-output")


def test_every_setting_is_documented_with_its_default() -> None:
    text = DOC.read_text()
    for name, field in AuthSettings.model_fields.items():
        variable = f"AUTH_{name.upper()}"
        row = re.search(rf"^\| `{variable}` \| ([^|]+) \|", text, re.MULTILINE)
        assert row, f"{variable} is not in the settings table"
        default = field.default
        if default is None:
            assert row.group(1).strip() == "unset", variable
        elif isinstance(default, tuple):
            assert row.group(1).strip() == f"`{','.join(default)}`", variable
        elif isinstance(default, bool):
            assert row.group(1).strip() == f"`{str(default).lower()}`", variable
        elif isinstance(default, float):
            assert row.group(1).strip() == f"`{default:g}`", variable
        else:
            assert row.group(1).strip() == f"`{default}`", variable
