"""The versioned model repository, laid out like TF Serving's and Triton's.

    models/<name>/<version>/metadata.json
                            model.keras, model.onnx, ...   (every artifact's sha256 is in metadata)

A version is a positive integer directory name; anything else under a model (a half-written
`.tmp-*` directory, a README) is ignored. A model may have `config.json` beside its versions:
how to serve it (runtime, threads, batching, pinned version), read by the service.
`metadata.json` names the artifacts, their sha256 and the signatures: for each signature its
Keras and ONNX files and its input/output specification.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modelkit.errors import (
    ArtifactIntegrityError,
    MetadataError,
    ModelNotFoundError,
    ModelRepositoryError,
)
from modelkit.metadata import ModelMetadata, Signature
from modelkit.runtimes import RUNTIMES, Runtime

METADATA_FILE = "metadata.json"
CONFIG_FILE = "config.json"
DEFAULT_SIGNATURE = "serving_default"
DEFAULT_RUNTIME = "onnxruntime"


__all__ = [
    "CONFIG_FILE",
    "DEFAULT_RUNTIME",
    "DEFAULT_SIGNATURE",
    "METADATA_FILE",
    "ArtifactIntegrityError",
    "LoadedModel",
    "MetadataError",
    "ModelNotFoundError",
    "ModelRepositoryError",
    "latest_version",
    "list_models",
    "list_versions",
    "load_model",
    "read_metadata",
    "read_model_config",
    "sha256_file",
    "verify_artifacts",
    "version_path",
]


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def list_models(root: str | Path) -> list[str]:
    """Names of the models that have at least one version."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and list_versions(root, p.name))


def list_versions(root: str | Path, name: str) -> list[int]:
    """The versions of a model, ascending."""
    model_dir = Path(root) / name
    if not model_dir.is_dir():
        return []
    return sorted(
        int(p.name)
        for p in model_dir.iterdir()
        if p.is_dir() and p.name.isdigit() and int(p.name) > 0 and (p / METADATA_FILE).is_file()
    )


def read_model_config(root: str | Path, name: str) -> dict[str, Any]:
    """The model's `config.json` as a JSON object; {} when there is none."""
    path = Path(root) / name / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MetadataError(f"{path} cannot be read: {exc}") from exc
    if not isinstance(config, dict):
        raise MetadataError(f"{path} must hold a JSON object")
    return config


def latest_version(root: str | Path, name: str) -> int:
    versions = list_versions(root, name)
    if not versions:
        raise ModelNotFoundError(f"model {name!r} has no version under {Path(root)}")
    return versions[-1]


def version_path(root: str | Path, name: str, version: int) -> Path:
    path = Path(root) / name / str(version)
    if not (path / METADATA_FILE).is_file():
        raise ModelNotFoundError(f"model {name!r} has no version {version} under {Path(root)}")
    return path


def read_metadata(root: str | Path, name: str, version: int | None = None) -> dict[str, Any]:
    if version is None:
        version = latest_version(root, name)
    return _read_metadata_file(version_path(root, name, version))


def _read_metadata_file(path: Path) -> dict[str, Any]:
    try:
        metadata = json.loads((path / METADATA_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise MetadataError(f"{path / METADATA_FILE} cannot be read: {exc}") from exc
    for key in ("name", "version", "artifacts", "signatures"):
        if key not in metadata:
            raise MetadataError(f"{path / METADATA_FILE} lacks the required key {key!r}")
    return metadata


def verify_artifacts(path: str | Path, metadata: dict[str, Any]) -> None:
    """Check that every artifact named in metadata exists and has the recorded sha256."""
    path = Path(path)
    for filename, info in metadata["artifacts"].items():
        artifact = path / filename
        if not artifact.is_file():
            raise ArtifactIntegrityError(f"{artifact} is listed in metadata but missing")
        actual = sha256_file(artifact)
        if actual != info["sha256"]:
            raise ArtifactIntegrityError(
                f"{artifact} has sha256 {actual}, metadata records {info['sha256']}: "
                "the file was changed after export"
            )


@dataclass
class LoadedModel:
    """A model version ready to run, with its typed contract and its raw metadata (metrics,
    training data and the other keys the contract does not type)."""

    name: str
    version: int
    path: Path
    metadata: dict[str, Any]
    runtime: Runtime
    contract: ModelMetadata
    signature: str = DEFAULT_SIGNATURE

    @property
    def runtime_name(self) -> str:
        return self.runtime.name

    @property
    def spec(self) -> Signature:
        """The loaded signature's tensors."""
        return self.contract.signatures[self.signature]

    @property
    def output_names(self) -> list[str]:
        return self.spec.output_names

    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """All outputs, by the names the metadata gives them."""
        return dict(zip(self.output_names, self.runtime.run(inputs), strict=True))

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """The first (for most models the only) output."""
        return self.runtime.run(inputs)[0]


def load_model(
    root: str | Path,
    name: str,
    version: int | None = None,
    *,
    runtime: str = DEFAULT_RUNTIME,
    signature: str = DEFAULT_SIGNATURE,
    verify: bool = True,
    threads: int | None = None,
) -> LoadedModel:
    """Load one signature of a model version (the latest when `version` is None).

    `runtime` is "onnxruntime" (the default, fast) or "tensorflow" (the Keras model behind a
    `tf.function` with a fixed input signature). With `verify`, every artifact's sha256 is
    checked first and a mismatch raises ArtifactIntegrityError.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {sorted(RUNTIMES)}")
    if version is None:
        version = latest_version(root, name)
    path = version_path(root, name, version)
    metadata = _read_metadata_file(path)
    contract = ModelMetadata.from_json(metadata, str(path / METADATA_FILE))
    if verify:
        verify_artifacts(path, metadata)
    spec = contract.signature(signature)
    key = RUNTIMES[runtime].artifact_key
    if key not in spec.artifacts:
        raise MetadataError(
            f"model {name!r} version {version} signature {signature!r} has no {key} artifact "
            f"for the {runtime} runtime"
        )
    loaded_runtime = RUNTIMES[runtime].load(path / spec.artifacts[key], spec.input, threads=threads)
    return LoadedModel(
        name=name,
        version=version,
        path=path,
        metadata=metadata,
        runtime=loaded_runtime,
        contract=contract,
        signature=signature,
    )
