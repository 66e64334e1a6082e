"""The typed contract of a model version: what `metadata.json` promises, read once at load.

    contract = ModelMetadata.from_json(json.loads(text))     # MetadataError if it is not one
    contract.signatures["serving_default"].input              # TensorSpec(name, dtype, shape)
    contract.class_labels                                     # labels, or the detector's
    contract.detection.confidence_threshold                   # a detector's serving settings

Writers (`modelkit.versions.VersionWriter`, `modelkit.importer`) describe tensors with
`TensorSpec` and write them with `to_json`; `modelkit.repository.load_model` parses the whole
file into a `ModelMetadata` (the `contract` of a LoadedModel); the service reads settings from
it rather than from string keys. Keys the contract does not know (metrics, training data,
hyper-parameters, prose) stay in the raw dict, `LoadedModel.metadata`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelkit.errors import MetadataError


def _require(mapping: Mapping[str, Any], key: str, where: str) -> Any:
    if not isinstance(mapping, Mapping) or key not in mapping:
        raise MetadataError(f"{where} lacks the required key {key!r}")
    return mapping[key]


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its name, numpy dtype name, shape (None: any size) and meaning."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]
    meaning: str | None = None

    @classmethod
    def from_json(cls, entry: Mapping[str, Any], where: str = "tensor") -> TensorSpec:
        name = _require(entry, "name", where)
        dtype = _require(entry, "dtype", f"{where} {name!r}")
        shape = _require(entry, "shape", f"{where} {name!r}")
        try:
            dtype = np.dtype(dtype).name
        except TypeError:
            raise MetadataError(f"{where} {name!r} has an unknown dtype {dtype!r}") from None
        if not isinstance(shape, list | tuple) or not all(
            d is None or (isinstance(d, int) and d > 0) for d in shape
        ):
            raise MetadataError(f"{where} {name!r}: shape must list sizes or nulls, not {shape!r}")
        return cls(str(name), dtype, tuple(shape), entry.get("meaning"))

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.meaning is not None:
            entry["meaning"] = self.meaning
        return entry


@dataclass(frozen=True)
class Signature:
    """A runnable function of a version: its artifacts and tensors."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    artifacts: Mapping[str, str] = field(default_factory=dict)  # runtime key -> file

    @classmethod
    def from_json(cls, entry: Mapping[str, Any], where: str) -> Signature:
        inputs = _require(entry, "inputs", where)
        outputs = _require(entry, "outputs", where)
        return cls(
            tuple(TensorSpec.from_json(t, f"{where} input") for t in inputs),
            tuple(TensorSpec.from_json(t, f"{where} output") for t in outputs),
            {key: entry[key] for key in ("onnx", "keras") if isinstance(entry.get(key), str)},
        )

    @property
    def input(self) -> TensorSpec:
        """The one input the runtimes feed."""
        if len(self.inputs) != 1:
            raise MetadataError(f"a signature with {len(self.inputs)} inputs cannot be fed")
        return self.inputs[0]

    @property
    def output_names(self) -> list[str]:
        return [spec.name for spec in self.outputs]


@dataclass(frozen=True)
class DetectionSettings:
    """A detector's serving contract: its input, labels, thresholds and (for a reading
    detector) the reader's signature and how many of the grid's proposals it reads."""

    input_size: int
    labels: tuple[str, ...]
    confidence_threshold: float
    nms_iou_threshold: float
    reader: str | None = None  # the reader's signature: a reading detector (version 2 on)
    proposal_threshold: float = 0.0
    max_proposals: int = 0
    objectness_weight: float = 1.0

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> DetectionSettings:
        where = "detection"
        reader = entry.get("reader")
        settings = cls(
            input_size=int(_require(entry, "input_size", where)),
            labels=tuple(_require(entry, "labels", where)),
            confidence_threshold=float(_require(entry, "confidence_threshold", where)),
            nms_iou_threshold=float(_require(entry, "nms_iou_threshold", where)),
            reader=_require(reader, "signature", "detection.reader") if reader else None,
            proposal_threshold=float(entry.get("proposal_threshold", 0.0)),
            max_proposals=int(entry.get("max_proposals", 0)),
            objectness_weight=float(entry.get("objectness_weight", 1.0)),
        )
        if settings.reader and settings.max_proposals < 1:
            raise MetadataError("a reading detector needs detection.max_proposals >= 1")
        return settings


@dataclass(frozen=True)
class LatentSettings:
    """A generative model's latent space: its size and the range a walk covers."""

    size: int
    walk_range: tuple[float, float] = (-3.0, 3.0)

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> LatentSettings:
        low, high = entry.get("walk_range", (-3.0, 3.0))
        return cls(int(_require(entry, "size", "latent")), (float(low), float(high)))


@dataclass(frozen=True)
class ModelMetadata:
    """What a version is, typed: everything the service and the tools rely on."""

    name: str
    version: int
    signatures: Mapping[str, Signature]
    artifacts: Mapping[str, str]  # file -> sha256
    task: str | None = None
    created: str | None = None
    labels: tuple[str, ...] | None = None
    detection: DetectionSettings | None = None
    latent: LatentSettings | None = None

    @classmethod
    def from_json(cls, document: Mapping[str, Any], where: str = "metadata.json") -> ModelMetadata:
        try:
            signatures = {
                key: Signature.from_json(entry, f"{where} signature {key!r}")
                for key, entry in _require(document, "signatures", where).items()
            }
            artifacts = {
                file: _require(info, "sha256", f"{where} artifact {file!r}")
                for file, info in _require(document, "artifacts", where).items()
            }
            labels = document.get("labels")
            detection = document.get("detection")
            latent = document.get("latent")
            return cls(
                name=str(_require(document, "name", where)),
                version=int(_require(document, "version", where)),
                signatures=signatures,
                artifacts=artifacts,
                task=document.get("task"),
                created=document.get("created"),
                labels=tuple(labels) if labels is not None else None,
                detection=DetectionSettings.from_json(detection) if detection else None,
                latent=LatentSettings.from_json(latent) if latent else None,
            )
        except MetadataError as error:
            raise MetadataError(f"{where}: {error}") from None
        except (TypeError, ValueError, AttributeError) as error:
            raise MetadataError(f"{where} holds a value of the wrong kind: {error}") from None

    @property
    def class_labels(self) -> tuple[str, ...] | None:
        """The classes the model names: its labels, or its detector's."""
        if self.labels is not None:
            return self.labels
        return self.detection.labels if self.detection else None

    def signature(self, name: str) -> Signature:
        try:
            return self.signatures[name]
        except KeyError:
            raise MetadataError(
                f"model {self.name!r} version {self.version} has no signature {name!r}; "
                f"it has {sorted(self.signatures)}"
            ) from None


def tensors_json(specs: Sequence[TensorSpec]) -> list[dict[str, Any]]:
    return [spec.to_json() for spec in specs]
