"""The model repository: export, atomic publish, integrity checks and both runtimes."""

import json
from pathlib import Path

import numpy as np
import pytest

from modelkit import (
    ArtifactIntegrityError,
    MetadataError,
    ModelNotFoundError,
    latest_version,
    list_models,
    list_versions,
    load_model,
)

keras = pytest.importorskip("keras")

from modelkit.versions import ExportParityError, VersionWriter, check_parity  # noqa: E402

pytestmark = pytest.mark.slow

INPUT = {"name": "features", "dtype": "float32", "shape": [None, 4], "meaning": "test input"}
OUTPUTS = [
    {"name": "scores", "dtype": "float32", "shape": [None, 3], "meaning": "softmax"},
    {"name": "embedding", "dtype": "float32", "shape": [None, 2], "meaning": "linear"},
]


def two_headed_model(seed: int) -> "keras.Model":
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    scores = keras.layers.Dense(3, activation="softmax")(hidden)
    embedding = keras.layers.Dense(2)(hidden)
    return keras.Model(inputs, [scores, embedding])


def export_toy(root: Path, seed: int = 0) -> Path:
    with VersionWriter(root, "toy") as version:
        version.export(
            two_headed_model(seed),
            stem="model",
            signature="serving_default",
            inputs=[INPUT],
            outputs=OUTPUTS,
            sample_inputs=np.random.default_rng(seed).normal(size=(32, 4)),
        )
        version.metadata.update(task="test", labels=["a", "b", "c"])
        (version.path / "notes.txt").write_text("an extra artifact")
    return version.path


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    export_toy(root, seed=0)
    export_toy(root, seed=1)
    return root


def test_versions_are_numbered_and_published_whole(repository: Path) -> None:
    assert list_models(repository) == ["toy"]
    assert list_versions(repository, "toy") == [1, 2]
    assert latest_version(repository, "toy") == 2
    assert not list((repository / "toy").glob(".tmp-*")), "staging directories are cleaned up"
    metadata = json.loads((repository / "toy" / "2" / "metadata.json").read_text())
    assert metadata["version"] == 2
    assert set(metadata["artifacts"]) == {"model.keras", "model.onnx", "notes.txt"}
    assert metadata["signatures"]["serving_default"]["parity"]["max_abs_difference"] <= 1e-5
    assert "keras" in metadata["frameworks"]


def test_failed_export_leaves_no_version(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="training failed"), VersionWriter(tmp_path, "toy"):
        raise RuntimeError("training failed")
    assert list_versions(tmp_path, "toy") == []
    assert list((tmp_path / "toy").iterdir()) == []


def test_both_runtimes_give_the_same_named_outputs(repository: Path) -> None:
    batch = np.random.default_rng(7).normal(size=(5, 4)).astype("float32")
    onnx_model = load_model(repository, "toy")
    tf_model = load_model(repository, "toy", runtime="tensorflow")
    assert (onnx_model.version, onnx_model.runtime_name) == (2, "onnxruntime")
    assert tf_model.runtime_name == "tensorflow"
    onnx_outputs, tf_outputs = onnx_model.run(batch), tf_model.run(batch)
    assert set(onnx_outputs) == {"scores", "embedding"}
    for name in onnx_outputs:
        np.testing.assert_allclose(onnx_outputs[name], tf_outputs[name], atol=1e-5)
    np.testing.assert_allclose(onnx_model.predict(batch).sum(axis=1), 1.0, atol=1e-5)


def test_pinned_version_is_loaded(repository: Path) -> None:
    batch = np.ones((1, 4), dtype="float32")
    first, second = load_model(repository, "toy", 1), load_model(repository, "toy", 2)
    assert first.version == 1
    assert not np.allclose(first.predict(batch), second.predict(batch))


def test_tampered_artifact_is_rejected(repository: Path, tmp_path: Path) -> None:
    path = export_toy(tmp_path)
    onnx_file = path / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    with pytest.raises(ArtifactIntegrityError, match=r"model\.onnx has sha256 .* changed after"):
        load_model(tmp_path, "toy")


def test_missing_artifact_is_rejected(tmp_path: Path) -> None:
    path = export_toy(tmp_path)
    (path / "notes.txt").unlink()
    with pytest.raises(ArtifactIntegrityError, match=r"notes\.txt is listed in metadata"):
        load_model(tmp_path, "toy")


def test_unreadable_metadata_is_a_clear_error(tmp_path: Path) -> None:
    path = export_toy(tmp_path)
    (path / "metadata.json").write_text("{not json")
    with pytest.raises(MetadataError, match="cannot be read"):
        load_model(tmp_path, "toy")


def test_unknown_model_version_and_signature(repository: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="'nope' has no version"):
        load_model(repository, "nope")
    with pytest.raises(ModelNotFoundError, match="no version 9"):
        load_model(repository, "toy", 9)
    with pytest.raises(MetadataError, match="no signature 'encode'"):
        load_model(repository, "toy", signature="encode")
    with pytest.raises(ValueError, match="unknown runtime"):
        load_model(repository, "toy", runtime="torch")


def test_directories_that_are_not_versions_are_ignored(repository: Path) -> None:
    (repository / "toy" / ".tmp-half-written").mkdir()
    (repository / "toy" / "0").mkdir()
    (repository / "toy" / "latest").mkdir()
    assert list_versions(repository, "toy") == [1, 2]


def test_parity_check_catches_an_export_of_a_different_model(repository: Path) -> None:
    other_model = two_headed_model(seed=0)  # version 2 was exported from seed 1
    batch = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    with pytest.raises(ExportParityError, match="differ by up to"):
        check_parity(other_model, repository / "toy" / "2" / "model.onnx", batch)
