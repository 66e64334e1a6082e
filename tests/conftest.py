import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = PROJECT_ROOT / "models"


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The committed model repository."""
    return MODELS_DIR
