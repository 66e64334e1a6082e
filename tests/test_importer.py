"""modelkit.importer and `python -m modelkit import`: a model of the user's own, in as a version.

The files are made here: ONNX graphs with the `onnx` helpers, a Keras model built and saved.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from modelkit import load_model
from modelkit.__main__ import main
from modelkit.importer import ImportRefused, import_model
from modelkit.repository import sha256_file, verify_artifacts

onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

WEIGHTS = np.arange(12, dtype=np.float32).reshape(4, 3) / 10


def onnx_file(
    path: Path,
    inputs: int = 1,
    batch: int | None = None,
    output_type: int = TensorProto.INT64,
) -> Path:
    """`y = x @ WEIGHTS` (plus `x2` when two inputs), and `best = argmax(y)` as `output_type`."""
    names = ["x", "x2"][:inputs]
    nodes = [helper.make_node("MatMul", ["x", "weights"], ["y"])]
    if inputs == 2:
        nodes[0] = helper.make_node("Add", ["x", "x2"], ["sum"])
        nodes.append(helper.make_node("MatMul", ["sum", "weights"], ["y"]))
    nodes.append(helper.make_node("ArgMax", ["y"], ["argmax"], axis=1, keepdims=0))
    nodes.append(helper.make_node("Cast", ["argmax"], ["best"], to=output_type))
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])]
    outputs.append(helper.make_tensor_value_info("best", output_type, [batch]))
    graph = helper.make_graph(
        nodes,
        "own",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, 4]) for n in names],
        outputs,
        initializer=[numpy_helper.from_array(WEIGHTS, "weights")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def test_an_onnx_file_becomes_the_next_version_with_its_signature_read_from_the_graph(
    tmp_path: Path,
) -> None:
    source = onnx_file(tmp_path / "own.onnx")
    models = tmp_path / "models"
    first = import_model(source, "own", models, labels=["a", "b", "c"])
    second = import_model(source, "own", models)
    assert (first.name, second.name) == ("1", "2")
    metadata = json.loads((first / "metadata.json").read_text())
    signature = metadata["signatures"]["serving_default"]
    assert [(t["name"], t["dtype"], t["shape"]) for t in signature["inputs"]] == [
        ("x", "float32", [None, 4])
    ]
    assert [(t["name"], t["dtype"], t["shape"]) for t in signature["outputs"]] == [
        ("y", "float32", [None, 3]),
        ("best", "int64", [None]),
    ]
    assert metadata["labels"] == ["a", "b", "c"] and metadata["task"] == "imported"
    assert metadata["imported_from"] == {
        "file": "own.onnx", "format": "onnx", "sha256": sha256_file(source),
    }  # fmt: skip
    assert "onnxruntime" in metadata["frameworks"]
    verify_artifacts(first, metadata)  # every artifact's sha256 recorded
    model = load_model(models, "own", 1)
    rows = np.ones((2, 4), np.float32)
    outputs = model.run(rows)
    np.testing.assert_allclose(outputs["y"], rows @ WEIGHTS, rtol=1e-6)
    assert outputs["best"].tolist() == [2, 2]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: onnx_file(p, inputs=2), "takes 2 inputs"),
        (lambda p: onnx_file(p, batch=1), "first axis must be the batch axis"),
        (lambda p: onnx_file(p, output_type=TensorProto.STRING), "numeric tensors"),
        (lambda p: (p.write_bytes(b"not a graph"), p)[1], "cannot load"),
    ],
)
def test_graphs_the_server_cannot_run_are_refused_with_the_reason(tmp_path, make, message):
    source = make(tmp_path / "bad.onnx")
    with pytest.raises(ImportRefused, match=message):
        import_model(source, "bad", tmp_path / "models")
    assert not list((tmp_path / "models" / "bad").glob("[0-9]*"))  # nothing published


@pytest.mark.parametrize("name", ["", "a/b", "-x", "x y", "a" * 65, "../up"])
def test_a_model_name_must_be_a_safe_path_segment_and_scope(tmp_path, name) -> None:
    with pytest.raises(ImportRefused, match="model name"):
        import_model(onnx_file(tmp_path / "own.onnx"), name, tmp_path / "models")


def test_labels_must_match_the_first_outputs_columns(tmp_path: Path) -> None:
    with pytest.raises(ImportRefused, match="2 labels for an output of 3 columns"):
        import_model(onnx_file(tmp_path / "own.onnx"), "own", tmp_path / "models", ["a", "b"])


def test_the_cli_imports_with_labels_from_a_file(tmp_path: Path, capsys) -> None:
    (tmp_path / "labels.txt").write_text("cat\ndog\nbird\n")
    source = onnx_file(tmp_path / "own.onnx")
    main(["import", str(source), "--name", "pets", "--labels-file", str(tmp_path / "labels.txt"),
          "--out", str(tmp_path / "models")])  # fmt: skip
    assert "published" in capsys.readouterr().out
    metadata = json.loads((tmp_path / "models" / "pets" / "1" / "metadata.json").read_text())
    assert metadata["labels"] == ["cat", "dog", "bird"]
    with pytest.raises(SystemExit) as refused:
        main(["import", str(tmp_path / "missing.onnx"), "--name", "pets", "--out", str(tmp_path)])
    assert refused.value.code == 2 and "not a file" in capsys.readouterr().err


def first_layer_ops(version: Path, input_name: str) -> set[str]:
    graph = onnx.load(str(version / "model.onnx")).graph
    return {node.op_type for node in graph.node if input_name in node.input}


def test_sparse_input_rewrites_the_layer_reading_the_input_and_checks_it(tmp_path: Path) -> None:
    source = onnx_file(tmp_path / "own.onnx")
    models = tmp_path / "models"
    main(["import", str(source), "--name", "bow", "--sparse-input", "--out", str(models)])
    version = models / "bow" / "1"
    signature = json.loads((version / "metadata.json").read_text())["signatures"][
        "serving_default"]  # fmt: skip
    assert signature["onnx_first_layer"] == "sparse"
    assert signature["parity_with_original"]["max_abs_difference"] <= 1e-5
    assert "MatMul" not in first_layer_ops(version, "x")
    rows = np.zeros((4, 4), dtype=np.float32)
    rows[0, 2], rows[1] = 0.5, [1.0, -2.0, 0.0, 3.0]  # row 2 and 3 stay empty
    outputs = load_model(models, "bow").run(rows)
    np.testing.assert_allclose(outputs["y"], rows @ WEIGHTS, atol=1e-6)
    np.testing.assert_array_equal(outputs["best"], (rows @ WEIGHTS).argmax(axis=1))


def test_sparse_input_is_refused_when_no_dense_layer_reads_the_input(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )
    source = tmp_path / "relu.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    source.write_bytes(model.SerializeToString())
    with pytest.raises(ImportRefused, match="--sparse-input: the model's input feeds no dense"):
        import_model(source, "relu", tmp_path / "models", sparse_input=True)
    assert not list((tmp_path / "models" / "relu").glob("[0-9]*"))  # nothing published


@pytest.mark.slow
def test_a_keras_file_goes_through_the_export_and_its_parity_check(tmp_path: Path) -> None:
    keras = pytest.importorskip("keras")
    inputs = keras.Input((5,), name="features")
    hidden = keras.layers.Dense(8, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))
    model.save(tmp_path / "own.keras")
    path = import_model(tmp_path / "own.keras", "kerasmodel", tmp_path / "models", ["no", "yes"])
    metadata = json.loads((path / "metadata.json").read_text())
    signature = metadata["signatures"]["serving_default"]
    assert signature["inputs"][0]["shape"] == [None, 5]
    assert signature["outputs"][0]["shape"] == [None, 2]
    assert signature["parity"]["max_abs_difference"] <= signature["parity"]["tolerance"]
    assert {"model.keras", "model.onnx"} <= set(metadata["artifacts"])
    rows = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    served = load_model(tmp_path / "models", "kerasmodel").predict(rows)
    np.testing.assert_allclose(served, model(rows).numpy(), atol=1e-5)

    sparse = import_model(tmp_path / "own.keras", "kerasmodel", tmp_path / "models",
                          sparse_input=True)  # fmt: skip
    signature = json.loads((sparse / "metadata.json").read_text())["signatures"][
        "serving_default"]  # fmt: skip
    assert signature["onnx_first_layer"] == "sparse"
    assert "MatMul" not in first_layer_ops(sparse, "features")
    rows[1:, 1:] = 0.0
    served = load_model(tmp_path / "models", "kerasmodel", version=2).predict(rows)
    np.testing.assert_allclose(served, model(rows).numpy(), atol=1e-5)
