import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres import PostgresServer, start_or_skip

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = PROJECT_ROOT / "models"


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The committed model repository."""
    return MODELS_DIR


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throw-away PostgreSQL cluster for the session (tests/postgres.py); each test that
    needs isolation makes its own database with ``postgres.create_database()``."""
    server = start_or_skip()
    yield server
    server.remove()
