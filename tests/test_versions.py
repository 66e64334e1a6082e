"""modelkit.versions: promoting a version from another repository (integrity first, then the
atomic publish)."""

import json
from pathlib import Path

import numpy as np
import pytest

from modelkit.__main__ import main
from modelkit.repository import (
    METADATA_FILE,
    ArtifactIntegrityError,
    list_versions,
    read_metadata,
    sha256_file,
    verify_artifacts,
)
from modelkit.versions import promote


def make_version(root: Path, name: str, version: int, payload: bytes) -> Path:
    """A version directory written by hand: one artifact and metadata recording its sha256."""
    path = root / name / str(version)
    path.mkdir(parents=True)
    (path / "model.onnx").write_bytes(payload)
    metadata = {
        "name": name,
        "version": version,
        "created": "2026-12-01T00:00:00+00:00",
        "signatures": {"serving_default": {"onnx": "model.onnx"}},
        "metrics": {"test": {"loss": 1.5}},
        "artifacts": {
            "model.onnx": {"sha256": sha256_file(path / "model.onnx"), "bytes": len(payload)}
        },
    }
    (path / METADATA_FILE).write_text(json.dumps(metadata))
    return path


def test_promote_publishes_the_next_version_with_the_same_artifacts(tmp_path: Path) -> None:
    scratch, models = tmp_path / "scratch", tmp_path / "models"
    make_version(models, "vae", 1, b"the old model")
    source = make_version(scratch, "vae", 1, b"the new model")

    published = promote(source, models)

    assert published == models / "vae" / "2"
    assert list_versions(models, "vae") == [1, 2]
    metadata = read_metadata(models, "vae", 2)
    assert metadata["version"] == 2
    assert metadata["promoted_from"] == {"path": str(source.resolve()), "version": 1}
    assert metadata["metrics"] == {"test": {"loss": 1.5}}
    assert (published / "model.onnx").read_bytes() == b"the new model"
    verify_artifacts(published, metadata)
    assert not list((models / "vae").glob(".tmp-*"))


def test_promote_refuses_a_changed_artifact_and_publishes_nothing(tmp_path: Path) -> None:
    source = make_version(tmp_path / "scratch", "vae", 1, b"the new model")
    (source / "model.onnx").write_bytes(b"tampered")
    models = tmp_path / "models"

    with pytest.raises(ArtifactIntegrityError, match=r"model\.onnx"):
        promote(source, models)

    assert not (models / "vae").exists()


def test_promote_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = make_version(tmp_path / "scratch", "classifier", 3, b"weights")
    models = tmp_path / "models"

    main(["promote", str(source), "--out", str(models)])

    assert f"published {models / 'classifier' / '1'}" in capsys.readouterr().out
    assert read_metadata(models, "classifier", 1)["promoted_from"]["version"] == 3


def test_compare_outputs_names_the_reference_in_every_refusal() -> None:
    from modelkit.versions import ExportParityError, compare_outputs

    one = [np.zeros((2, 3), np.float32)]
    assert compare_outputs(one, [np.full((2, 3), 1e-6, np.float32)], reference="Keras") < 1e-5
    assert compare_outputs([np.zeros((0, 3))], [np.zeros((0, 3))], reference="Keras") == 0.0
    with pytest.raises(ExportParityError, match="the original gives 1 outputs, ONNX gives 2"):
        compare_outputs(one, one * 2, reference="the original")
    with pytest.raises(ExportParityError, match=r"output 0: Keras shape \(2, 3\)"):
        compare_outputs(one, [np.zeros((3, 2), np.float32)], reference="Keras")
    with pytest.raises(ExportParityError, match=r"ONNX and Keras outputs differ by up to 0\.5"):
        compare_outputs(one, [np.full((2, 3), 0.5, np.float32)], reference="Keras")
