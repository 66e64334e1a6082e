"""Writing a model version into the repository: export, parity check, metadata, atomic publish.

The one writer of versions: the training pipelines, `python -m modelkit import` (a model of
the user's own) and `promote` all publish through `VersionWriter`. TensorFlow, Keras and
ONNX Runtime are imported only by the functions that need them, so importing this module
needs numpy alone, like the rest of modelkit.

    with VersionWriter(args.out, "vae") as version:
        version.export(decoder, stem="model", signature="serving_default",
                       inputs=[...], outputs=[...], sample_inputs=latent_batch)
        version.metadata.update(task="image-generation", metrics=...)
    print(version.path)          # models/vae/<n>, published

A version trained into another repository (a scratch `--out`, a colleague's machine) moves
into this one as its next version with

    python -m modelkit promote /tmp/scratch/vae/1 [--out models/]

which checks every artifact's sha256 first and publishes through the same atomic rename.

Everything is written into a hidden temporary directory beside the versions and renamed to the
next free integer only when complete, so a server polling the repository never sees half a
version. Every exported signature is run in both Keras and ONNX Runtime on the sample inputs;
a difference above `PARITY_TOLERANCE` aborts the export.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from modelkit.metadata import TensorSpec, tensors_json
from modelkit.repository import (
    METADATA_FILE,
    list_versions,
    read_metadata,
    sha256_file,
    verify_artifacts,
)

PARITY_TOLERANCE = 1e-5
PARITY_SAMPLES = 32


class ExportParityError(RuntimeError):
    """The ONNX export computes something other than the Keras model."""


def framework_versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": platform.python_version()}
    for package in ("tensorflow-cpu", "tensorflow", "keras", "onnx", "onnxruntime", "tf2onnx"):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            continue
    return versions


def export_onnx(model: Any, path: Path, input_spec: TensorSpec) -> None:
    import tensorflow as tf

    signature = tf.TensorSpec(
        [None, *input_spec.shape[1:]], tf.as_dtype(input_spec.dtype), name=input_spec.name
    )
    model.export(str(path), format="onnx", verbose=False, input_signature=[signature])


class NothingToRewrite(ValueError):
    """A sparse first layer was asked of a model whose input feeds no dense layer."""


def rewrite_sparse_input(onnx_path: Path) -> None:
    """Rewrite the ONNX file's first layer to read only its input's non-zero entries."""
    import onnx

    from modelkit.sparse_input import sparsify_input

    model = onnx.load(str(onnx_path))
    if not sparsify_input(model):
        raise NothingToRewrite("the model's input feeds no dense layer to rewrite")
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(onnx_path))


def check_parity(
    model: Any, onnx_path: Path, sample_inputs: np.ndarray, tolerance: float = PARITY_TOLERANCE
) -> float:
    """Run Keras and ONNX Runtime on the same inputs; return the largest absolute difference."""
    keras_outputs = model(sample_inputs, training=False)
    if not isinstance(keras_outputs, list | tuple):
        keras_outputs = [keras_outputs]
    return compare_outputs(
        [np.asarray(o) for o in keras_outputs],
        run_onnx(onnx_path, sample_inputs),
        tolerance,
        reference="Keras",
    )


def run_onnx(onnx_path: Path, inputs: np.ndarray) -> list[np.ndarray]:
    """Every output of the one-input ONNX graph at `onnx_path` on `inputs`."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (onnx_input,) = session.get_inputs()
    return session.run(None, {onnx_input.name: inputs})


def compare_outputs(
    expected: Sequence[np.ndarray],
    actual: Sequence[np.ndarray],
    tolerance: float = PARITY_TOLERANCE,
    *,
    reference: str,
) -> float:
    """The largest absolute difference between the `reference`'s outputs and the ONNX graph's;
    ExportParityError when they differ in number, shape, or by more than `tolerance`."""
    if len(expected) != len(actual):
        raise ExportParityError(
            f"{reference} gives {len(expected)} outputs, ONNX gives {len(actual)}"
        )
    worst = 0.0
    for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
        if want.shape != got.shape:
            raise ExportParityError(
                f"output {index}: {reference} shape {want.shape}, ONNX shape {got.shape}"
            )
        difference = np.abs(want.astype(np.float64) - got.astype(np.float64))
        worst = max(worst, float(np.max(difference, initial=0.0)))
    if worst > tolerance:
        raise ExportParityError(
            f"ONNX and {reference} outputs differ by up to {worst:.3g} (tolerance {tolerance:g})"
        )
    return worst


class VersionWriter:
    """Builds one new version of a model and publishes it atomically on success."""

    def __init__(self, models_dir: str | Path, name: str) -> None:
        self.models_dir = Path(models_dir)
        self.name = name
        self.model_dir = self.models_dir / name
        self.model_dir.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.model_dir))
        self.version: int | None = None
        self.metadata: dict[str, Any] = {
            "name": name,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "signatures": {},
            "frameworks": framework_versions(),
        }

    @property
    def path(self) -> Path:
        """Where the files are now: the staging directory until published."""
        if self.version is None:
            return self.staging
        return self.model_dir / str(self.version)

    def export(
        self,
        model: Any,
        *,
        stem: str,
        signature: str,
        inputs: Sequence[TensorSpec | Mapping[str, Any]],
        outputs: Sequence[TensorSpec | Mapping[str, Any]],
        sample_inputs: np.ndarray,
        tolerance: float = PARITY_TOLERANCE,
        sparse_input: bool = False,
    ) -> float:
        """Save `model` as `<stem>.keras` and `<stem>.onnx`, parity-checked, under `signature`.

        `inputs` and `outputs` describe the tensors (`TensorSpec`, or its JSON form, checked
        the same way): name, dtype, shape (None for the batch axis) and meaning.
        `sample_inputs` are the PARITY_SAMPLES inputs of the check. With `sparse_input`, the
        ONNX graph's first layer reads only the input's non-zero entries
        (`modelkit.sparse_input`; same input, same outputs), and the parity check runs on the
        rewritten graph. Returns the largest Keras/ONNX difference seen.
        """
        input_specs, output_specs = _specs(inputs), _specs(outputs)
        (input_spec,) = input_specs
        keras_path = self.staging / f"{stem}.keras"
        onnx_path = self.staging / f"{stem}.onnx"
        model.save(keras_path)
        export_onnx(model, onnx_path, input_spec)
        if sparse_input:
            rewrite_sparse_input(onnx_path)
        sample_inputs = np.asarray(sample_inputs, dtype=input_spec.dtype)
        difference = check_parity(model, onnx_path, sample_inputs, tolerance)
        self.metadata["signatures"][signature] = {
            "keras": keras_path.name,
            "onnx": onnx_path.name,
            "inputs": tensors_json(input_specs),
            "outputs": tensors_json(output_specs),
            "parity": {
                "samples": len(sample_inputs),
                "max_abs_difference": difference,
                "tolerance": tolerance,
            },
        }
        if sparse_input:
            self.metadata["signatures"][signature]["onnx_first_layer"] = "sparse"
        return difference

    def publish(self) -> Path:
        artifacts = {
            f.name: {"sha256": sha256_file(f), "bytes": f.stat().st_size}
            for f in sorted(self.staging.iterdir())
            if f.is_file() and f.name != METADATA_FILE
        }
        if not self.metadata["signatures"]:
            raise ValueError("a version needs at least one exported signature")
        while True:
            version = max(list_versions(self.models_dir, self.name), default=0) + 1
            self.metadata["version"] = version
            self.metadata["artifacts"] = artifacts
            (self.staging / METADATA_FILE).write_text(
                json.dumps(self.metadata, indent=2, default=_json_default) + "\n"
            )
            # mkdtemp makes the directory private; a published version is readable by the server.
            self.staging.chmod(0o755)
            try:
                os.rename(self.staging, self.model_dir / str(version))
            except OSError:
                if (self.model_dir / str(version)).exists():
                    continue  # another export took this number first
                raise
            self.version = version
            return self.path

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> VersionWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.publish()
        else:
            self.discard()


def promote(source: str | Path, models_dir: str | Path) -> Path:
    """Publish the version directory `source` as the next version of its model in `models_dir`.

    The artifacts are checked against the source's metadata before anything is copied (a
    changed file raises ArtifactIntegrityError); the metadata is kept, with the new version
    number and `promoted_from` naming the source.
    """
    source = Path(source).resolve()
    metadata = read_metadata(source.parent.parent, source.parent.name, int(source.name))
    verify_artifacts(source, metadata)
    with VersionWriter(models_dir, metadata["name"]) as version:
        for artifact in metadata["artifacts"]:
            shutil.copy2(source / artifact, version.staging / artifact)
        version.metadata = {
            **metadata,
            "promoted_from": {"path": str(source), "version": metadata["version"]},
        }
    return version.path


def _specs(tensors: Sequence[TensorSpec | Mapping[str, Any]]) -> list[TensorSpec]:
    return [t if isinstance(t, TensorSpec) else TensorSpec.from_json(t) for t in tensors]


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
