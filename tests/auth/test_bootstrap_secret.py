"""A weak AUTH_BOOTSTRAP_CLIENT_SECRET stops the start, says how to make one, never echoes it."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import pytest

from auth_service import secret_strength
from auth_service.secret_strength import PLACEHOLDER, weakness

from .conftest import ServerFactory
from .support import PYTHON, REPO_ROOT, Credentials, clean_environment, token_for

HINT = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"


def _serve_with_secret(tmp_path: Path, secret: str) -> subprocess.CompletedProcess[str]:
    env = clean_environment(
        AUTH_DATABASE_PATH=str(tmp_path / "x.sqlite3"),
        AUTH_BOOTSTRAP_CLIENT_ID="demo",
        AUTH_BOOTSTRAP_CLIENT_SECRET=secret,
    )
    return subprocess.run(
        [PYTHON, "-m", "auth_service", "serve"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _env_example_secret() -> str:
    for line in (REPO_ROOT / ".env.example").read_text().splitlines():
        if line.startswith("AUTH_BOOTSTRAP_CLIENT_SECRET="):
            return line.split("=", 1)[1]
    raise AssertionError("no AUTH_BOOTSTRAP_CLIENT_SECRET in .env.example")


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        (PLACEHOLDER, "is the placeholder of .env.example"),
        ("tiny-secret", "must have at least 16 characters"),
        ("aaaaaaaaaaaaaaaa", "must have at least 10 different characters"),
    ],
)
def test_a_weak_bootstrap_secret_stops_the_start(tmp_path: Path, secret: str, reason: str) -> None:
    result = _serve_with_secret(tmp_path, secret)
    assert result.returncode == 2
    assert f"AUTH_BOOTSTRAP_CLIENT_SECRET {reason}" in result.stderr
    assert HINT in result.stderr
    assert secret not in result.stderr + result.stdout
    assert not (tmp_path / "x.sqlite3").exists()  # refused before anything was created


def test_the_env_example_value_is_the_refused_placeholder() -> None:
    assert _env_example_secret() == PLACEHOLDER
    assert weakness(PLACEHOLDER) is not None


def test_a_generated_secret_is_accepted(tmp_path: Path, start_server: ServerFactory) -> None:
    secret = secrets.token_urlsafe(32)
    server = start_server(
        tmp_path / "ok.sqlite3",
        AUTH_BOOTSTRAP_CLIENT_ID="demo",
        AUTH_BOOTSTRAP_CLIENT_SECRET=secret,
    )
    with server.http() as http:
        assert token_for(http, Credentials("demo", secret))


@pytest.mark.parametrize(
    "secret",
    [
        "short-Secret-1",  # under 16 characters
        "CHANGE-ME-please-0123456789",  # a placeholder in other words
        "Aa1!Aa1!Aa1!Aa1!Aa1!",  # four different characters
        "abcdefghijklmnop",  # 16 lower-case letters: about 75 bits at most
        "with space 0123456789abcdef",  # a space reads differently in form-encoded Basic
        "percent%41-0123456789abcdef",  # so does '%'
        "caf\u00e9-0123456789abcdefghij",  # not ASCII: clients disagree on its encoding
    ],
)
def test_weak_secrets_are_named_without_quoting_them(secret: str) -> None:
    reason = weakness(secret)
    assert reason is not None
    assert secret not in reason


@pytest.mark.parametrize(
    "secret",
    [
        secrets.token_urlsafe(32),
        secrets.token_urlsafe(16),
        secrets.token_hex(16),
        "bootstrap-secret-for-tests-0123456789",
    ],
)
def test_strong_secrets_pass(secret: str) -> None:
    assert weakness(secret) is None
    assert secret_strength.estimated_bits(secret) >= secret_strength.MIN_BITS
