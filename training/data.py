"""Where the training data lives and how to fingerprint it.

The project never ships data. Each CLI takes `--data PATH` and falls back to the shared data
folder beside the project root (`../shared/data/`) when it exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelkit.repository import sha256_file

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA_DIR = PROJECT_ROOT.parent / "shared" / "data"
DEFAULT_MODELS_DIR = PROJECT_ROOT / "models"


def default_data_path(filename: str) -> Path | None:
    """`../shared/data/<filename>` when it exists, else None."""
    candidate = SHARED_DATA_DIR / filename
    return candidate if candidate.exists() else None


def fingerprint(path: str | Path, *, source: str, sizes: dict[str, Any]) -> dict[str, Any]:
    """The `training_data` block of metadata: where the data came from and its exact bytes."""
    path = Path(path)
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    return {
        "source": source,
        "files": {f.name: {"sha256": sha256_file(f), "bytes": f.stat().st_size} for f in files},
        "sizes": sizes,
    }
