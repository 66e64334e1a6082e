"""Bring your own model: an `.onnx` or `.keras` file in as the next version of a model.

    python -m modelkit import my_model.onnx --name my-model [--labels cat,dog] [--out models/]

The signature (input and output names, dtypes, shapes) is read from the graph, so nothing has
to be declared by hand. An ONNX file is copied as it is and run once on sample rows, so that a
graph ONNX Runtime cannot run is refused here rather than by the server. A Keras file goes
through the training pipelines' own export (`VersionWriter.export`: `model.keras`, its ONNX
export, and the Keras/ONNX parity check on sample rows). Either way the version is published
by the same atomic rename, with every artifact's sha256 and the framework versions, and a
running service picks it up at its next poll (or `POST /v1/models/<name>/reload`).

What the server can run: one input whose first axis is the batch (dynamic), numeric tensors
in and out (the Open Inference Protocol's FP16/32/64, INT8-64, UINT8-64 and BOOL).

With `--sparse-input`, a model whose float32 input feeds dense layers directly (bag-of-words,
tf-idf, one-hot features: mostly zeros) gets those layers rewritten to read only the non-zero
entries (`modelkit.sparse_input`), and the rewritten graph is checked against the original (an
ONNX file) or the Keras model on sample rows that are mostly zeros.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelkit.errors import ModelRepositoryError
from modelkit.metadata import TensorSpec, tensors_json
from modelkit.repository import sha256_file
from modelkit.versions import (
    PARITY_SAMPLES,
    PARITY_TOLERANCE,
    ExportParityError,
    NothingToRewrite,
    VersionWriter,
    compare_outputs,
    rewrite_sparse_input,
    run_onnx,
)

# ONNX Runtime's type names of the tensors the runtimes can feed and return.
ONNX_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
}
SIGNATURE = "serving_default"
_SPARSE_HINT = (
    "(it rewrites MatMul nodes with constant float32 weights that read the float32 input)"
)
CHECK_ROWS = 2
_NAME_CHARACTERS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


class ImportRefused(ModelRepositoryError):
    """The file cannot be served as it is; the message says why and what to change."""


def check_name(name: str) -> str:
    """A model name that is a path segment, a scope suffix and an nginx location match."""
    if not 1 <= len(name) <= 64 or not set(name) <= _NAME_CHARACTERS or name[0] in ".-":
        raise ImportRefused(
            f"model name {name!r}: use 1-64 letters, digits, '_', '.' or '-', not starting "
            "with '.' or '-'"
        )
    return name


def _tensor(name: str, dtype: str, dims: Sequence[Any], role: str) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in dims)
    return TensorSpec(name, np.dtype(dtype).name, shape, f"{role} of the graph")


def _sample(spec: TensorSpec, rows: int, seed: int = 0) -> np.ndarray:
    """Rows shaped like `spec` (1 for unknown sizes): normal floats, small integers, booleans."""
    shape = [rows, *(d or 1 for d in spec.shape[1:])]
    rng = np.random.default_rng(seed)
    dtype = np.dtype(spec.dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    return rng.integers(0, 2, shape).astype(dtype)


def _sparse_sample(spec: TensorSpec, rows: int, seed: int = 0) -> np.ndarray:
    """Rows like `_sample`'s with about 95% of the entries zero, the first row whole and the
    last all zero: what a sparse first layer must get right."""
    sample = _sample(spec, rows, seed)
    keep = np.random.default_rng(seed + 1).random(sample.shape) < 0.05
    keep[0] = True
    keep[-1] = False
    return np.where(keep, sample, 0).astype(sample.dtype)


def _rewrite_onnx(path: Path, inputs: list[TensorSpec]) -> dict[str, Any]:
    """Rewrite the ONNX copy at `path` to a sparse first layer; check it against the original
    on sample rows; the parity block for the metadata."""
    sample = _sparse_sample(inputs[0], PARITY_SAMPLES)
    expected = run_onnx(path, sample)
    try:
        rewrite_sparse_input(path)
        worst = compare_outputs(expected, run_onnx(path, sample), reference="the original")
    except NothingToRewrite as exc:
        raise ImportRefused(f"--sparse-input: {exc} {_SPARSE_HINT}") from None
    except ExportParityError as exc:
        raise ImportRefused(f"--sparse-input: {exc}") from None
    return {"samples": len(sample), "max_abs_difference": worst, "tolerance": PARITY_TOLERANCE}


def _check_single_batched_input(inputs: list[TensorSpec]) -> TensorSpec:
    if len(inputs) != 1:
        raise ImportRefused(
            f"the graph takes {len(inputs)} inputs; the runtimes feed one (concatenate them "
            "into one tensor, or wrap the model)"
        )
    (spec,) = inputs
    if not spec.shape or spec.shape[0] is not None:
        raise ImportRefused(
            f"input {spec.name!r} has shape {list(spec.shape)}: its first axis must be the "
            "batch axis, of any size (export it with a dynamic batch dimension)"
        )
    return spec


def onnx_signature(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The inputs and outputs of an ONNX graph as metadata entries; refused if not servable."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for every kind of bad file
        raise ImportRefused(f"ONNX Runtime cannot load {path.name}: {exc}") from None
    entries = []
    for role, tensors in (("input", session.get_inputs()), ("output", session.get_outputs())):
        specs = []
        for tensor in tensors:
            if tensor.type not in ONNX_DTYPES:
                raise ImportRefused(
                    f"{role} {tensor.name!r} is {tensor.type}; the server serves numeric tensors "
                    "(for scikit-learn classifiers convert with options={'zipmap': False})"
                )
            specs.append(_tensor(tensor.name, ONNX_DTYPES[tensor.type], tensor.shape, role))
        entries.append(specs)
    inputs, outputs = entries
    _check_single_batched_input(inputs)
    return inputs, outputs


def _smoke_check(path: Path, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> None:
    """Run the graph once on CHECK_ROWS rows: every output must have one row per input row."""
    import onnxruntime as ort

    (spec,) = inputs
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    try:
        results = session.run(None, {spec.name: _sample(spec, CHECK_ROWS)})
    except Exception as exc:
        raise ImportRefused(f"the graph fails on {CHECK_ROWS} sample rows: {exc}") from None
    for output, result in zip(outputs, results, strict=True):
        if np.ndim(result) == 0 or len(result) != CHECK_ROWS:
            raise ImportRefused(
                f"output {output.name!r} has shape {list(np.shape(result))} for "
                f"{CHECK_ROWS} input rows; every output needs one row per input row"
            )


def _keras_signature(model: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
    inputs = [_tensor(t.name, str(t.dtype), tuple(t.shape), "input") for t in model.inputs]
    names = getattr(model, "output_names", None) or [
        f"output_{i}" for i in range(len(model.outputs))
    ]
    outputs = [
        _tensor(name, str(t.dtype), tuple(t.shape), "output")
        for name, t in zip(names, model.outputs, strict=True)
    ]
    _check_single_batched_input(inputs)
    return inputs, outputs


def import_model(
    path: str | Path,
    name: str,
    models_dir: str | Path,
    labels: Sequence[str] | None = None,
    description: str | None = None,
    sparse_input: bool = False,
) -> Path:
    """Publish the model file at `path` as the next version of `name`; returns its directory.
    `sparse_input`: rewrite the dense layers that read the input to read its non-zero entries
    only (see the module's docstring)."""
    path = Path(path)
    check_name(name)
    if not path.is_file():
        raise ImportRefused(f"{path} is not a file")
    kind = path.suffix.lower()
    if kind not in (".onnx", ".keras"):
        raise ImportRefused(f"{path.name}: import an .onnx or a .keras file")
    with VersionWriter(models_dir, name) as version:
        if kind == ".onnx":
            inputs, outputs = onnx_signature(path)
            _smoke_check(path, inputs, outputs)
            copy = version.staging / "model.onnx"
            shutil.copyfile(path, copy)
            version.metadata["signatures"][SIGNATURE] = {
                "onnx": "model.onnx",
                "inputs": tensors_json(inputs),
                "outputs": tensors_json(outputs),
                "checked": {"samples": CHECK_ROWS, "runtime": "onnxruntime"},
            }
            if sparse_input:
                version.metadata["signatures"][SIGNATURE].update(
                    parity_with_original=_rewrite_onnx(copy, inputs), onnx_first_layer="sparse"
                )
        else:
            import keras

            model = keras.saving.load_model(path, compile=False)
            inputs, outputs = _keras_signature(model)
            sample = _sparse_sample if sparse_input else _sample
            try:
                version.export(
                    model,
                    stem="model",
                    signature=SIGNATURE,
                    inputs=inputs,
                    outputs=outputs,
                    sample_inputs=sample(inputs[0], PARITY_SAMPLES),
                    sparse_input=sparse_input,
                )
            except NothingToRewrite as exc:
                raise ImportRefused(f"--sparse-input: {exc} {_SPARSE_HINT}") from None
        version.metadata.update(
            task="imported",
            imported_from={
                "file": path.name,
                "format": kind.lstrip("."),
                "sha256": sha256_file(path),
            },
        )
        if description:
            version.metadata["description"] = description
        if labels:
            first = outputs[0]
            width = first.shape[-1] if len(first.shape) > 1 else None
            if width is not None and width != len(labels):
                raise ImportRefused(
                    f"{len(labels)} labels for an output of {width} columns ({first.name!r})"
                )
            version.metadata["labels"] = list(labels)
    return version.path
