"""Throwaway models for testing the serving machinery (registry, reload, batching) only.

A toy version is one ONNX MatMul, `y = x @ weights`, published with `modelkit.versions`'
VersionWriter so that its layout, metadata and sha256 records are the real ones. Model routes
are never tested with these.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from modelkit.versions import VersionWriter  # noqa: E402

TOY = "toy"
FEATURES = 4
OUTPUTS = 3


def toy_weights(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(FEATURES, OUTPUTS)).astype(np.float32)


def _matmul_onnx(weights: np.ndarray) -> bytes:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "weights"], ["y"])],
        "toy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, FEATURES])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, OUTPUTS])],
        initializer=[numpy_helper.from_array(weights, "weights")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def publish_toy(root: Path, seed: int, name: str = TOY, declared_features: int = FEATURES) -> Path:
    """Publish the next version of the toy model; its answers depend on `seed`.

    `declared_features` is the input width written in the metadata: anything but FEATURES
    makes a version that loads but fails its warm-up.
    """
    with VersionWriter(root, name) as version:
        (version.path / "model.onnx").write_bytes(_matmul_onnx(toy_weights(seed)))
        version.metadata["signatures"]["serving_default"] = {
            "keras": "model.keras",
            "onnx": "model.onnx",
            "inputs": [{"name": "x", "dtype": "float32", "shape": [None, declared_features]}],
            "outputs": [{"name": "y", "dtype": "float32", "shape": [None, OUTPUTS]}],
        }
        version.metadata.update(task="test", labels=["a", "b", "c"], metrics={"seed": seed})
    return version.path


def publish_broken_toy(root: Path, name: str = TOY) -> Path:
    """A version whose ONNX file was changed after export: its sha256 no longer matches."""
    path = publish_toy(root, seed=99, name=name)
    (path / "model.onnx").write_bytes(b"not a model any more")
    return path
