"""One real stack for the hardening tests: supervisord, nginx, app and auth service on loopback.

The app serves a copy of the model repository in the test's temporary directory, so that the
corrupt-artifact test can publish a broken version there, and polls it every second.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import running_stack
from tests.e2e.stack import PROJECT_ROOT, Stack, grant_stack_user

POLL_INTERVAL_S = 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("models") / "models"
    shutil.copytree(PROJECT_ROOT / "models", copy)
    grant_stack_user(copy)
    return copy


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Stack]:
    extra_env = {
        "APP_MODELS_DIR": str(models_dir),
        "APP_POLL_INTERVAL_S": str(POLL_INTERVAL_S),
        # The soak calls /oauth2/token, /introspect and /revoke at 32 connections; the rate
        # limits are tested in tests/e2e and by test_flood.py.
        "GATEWAY_TOKEN_RATE": "1000r/s",
        "GATEWAY_CLIENT_AUTH_RATE": "1000r/s",
    }
    base = tmp_path_factory.mktemp("reliability")
    for started in running_stack(base, cache_seconds=2, extra_env=extra_env):
        started.add_client("admin", "models:read", "--introspect")
        yield started


@pytest.fixture(scope="session")
def token(stack: Stack) -> str:
    return stack.token("full")


@pytest.fixture(scope="session")
def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
