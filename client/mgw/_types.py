"""The typed answers of the gateway: small frozen dataclasses built from its JSON.

Each keeps the gateway's field names, so the JSON in docs/app.md and these attributes read the
same; ``from_json`` is the one place that knows the wire shape of each.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "Box",
    "Category",
    "Detection",
    "InferResult",
    "ModelInfo",
    "Prediction",
    "Samples",
    "Tensor",
    "Token",
]


@dataclass(frozen=True, repr=False)
class Token:
    """An access token as the token endpoint issued it (RFC 6749 §5.1)."""

    access_token: str
    token_type: str
    expires_in: int
    scope: str

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Token:
        return cls(
            access_token=str(body["access_token"]),
            token_type=str(body.get("token_type", "Bearer")),
            expires_in=int(body.get("expires_in", 0)),
            scope=str(body.get("scope", "")),
        )

    @property
    def scopes(self) -> tuple[str, ...]:
        return tuple(self.scope.split())

    def __repr__(self) -> str:  # a token is a credential: keep it out of logs and tracebacks
        return (
            f"Token(token_type={self.token_type!r}, expires_in={self.expires_in}, "
            f"scope={self.scope!r})"
        )


@dataclass(frozen=True)
class Box:
    """A box in the sent image's pixels (after its EXIF orientation)."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float

    @property
    def width(self) -> float:
        return self.x_max - self.x_min

    @property
    def height(self) -> float:
        return self.y_max - self.y_min

    def as_tuple(self) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max): what ``PIL.ImageDraw.rectangle`` takes."""
        return (self.x_min, self.y_min, self.x_max, self.y_max)


@dataclass(frozen=True)
class Detection:
    """One thing the detector found: its label, confidence and box."""

    label: str
    confidence: float
    box: Box

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Detection:
        box = item["box"]
        return cls(
            label=str(item["label"]),
            confidence=float(item["confidence"]),
            box=Box(
                float(box["x_min"]), float(box["y_min"]), float(box["x_max"]), float(box["y_max"])
            ),
        )


@dataclass(frozen=True)
class Category:
    label: str
    probability: float


@dataclass(frozen=True)
class Prediction:
    """The classifier's most likely categories of one text, most likely first."""

    categories: tuple[Category, ...]

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Prediction:
        return cls(
            tuple(Category(str(c["label"]), float(c["probability"])) for c in item["categories"])
        )

    @property
    def label(self) -> str:
        """The most likely category."""
        return self.categories[0].label

    @property
    def probability(self) -> float:
        """The most likely category's probability."""
        return self.categories[0].probability


@dataclass(frozen=True)
class ModelInfo:
    """One served model as ``GET /v1/models`` describes it; ``raw`` holds the whole answer
    (batching, signature, versions on disk, ...) for what has no attribute here."""

    name: str
    state: str
    version: int | None
    runtime: str | None
    task: str | None
    labels: tuple[str, ...] | None
    metrics: Mapping[str, Any]
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> ModelInfo:
        labels = item.get("labels")
        return cls(
            name=str(item["name"]),
            state=str(item.get("state", "")),
            version=item.get("version"),
            runtime=item.get("runtime"),
            task=item.get("task"),
            labels=tuple(labels) if labels is not None else None,
            metrics=dict(item.get("metrics") or {}),
            raw=dict(item),
        )


class Samples(list["Image.Image"]):
    """The VAE's images (a plain list of ``PIL.Image``) with what produced them: the latent
    vector of each, the seed they were drawn with (``sample``; ``None`` for ``walk`` and
    ``decode``) and the walk's grid size (``walk``)."""

    def __init__(
        self,
        images: Iterable[Image.Image],
        latents: Sequence[Sequence[float]],
        seed: int | None = None,
        grid: int | None = None,
        model: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(images)
        self.latents = [list(latent) for latent in latents]
        self.seed = seed
        self.grid = grid
        self.model = dict(model or {})

    def tile(self, columns: int | None = None) -> Image.Image:
        """One image with the samples row by row, ``columns`` wide (the grid's size for a walk,
        else the square root rounded up): as the gateway's ``format=png`` tiles them."""
        from PIL import Image

        if not self:
            raise ValueError("no images to tile")
        columns = columns or self.grid or math.ceil(math.sqrt(len(self)))
        width, height = self[0].size
        rows = -(-len(self) // columns)
        sheet = Image.new(self[0].mode, (columns * width, rows * height))
        for index, image in enumerate(self):
            row, column = divmod(index, columns)
            sheet.paste(image, (column * width, row * height))
        return sheet


# The Open Inference Protocol's datatypes by numpy dtype name (numpy stays optional).
_DATATYPES = {
    "bool": "BOOL",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
}
_NUMPY_TYPES = {value: key for key, value in _DATATYPES.items()}


def _flat(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return [element for item in value for element in _flat(item)]
    return [value]


def _shape(value: Any) -> list[int]:
    shape = []
    while isinstance(value, list | tuple):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _python_datatype(element: Any) -> str:
    if isinstance(element, bool):
        return "BOOL"
    if isinstance(element, int):
        return "INT64"
    if isinstance(element, float):
        return "FP32"
    if isinstance(element, str | bytes):
        return "BYTES"
    raise TypeError(f"cannot tell the protocol datatype of {element!r}; pass a Tensor")


@dataclass(frozen=True)
class Tensor:
    """A named tensor of the Open Inference Protocol: ``data`` flat, row-major."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: list[Any] = field(repr=False)

    @classmethod
    def of(cls, name: str, value: Any, datatype: str | None = None) -> Tensor:
        """A tensor from a numpy array (its dtype gives the datatype) or nested lists (floats
        are sent as FP32, ints as INT64, strings as BYTES unless ``datatype`` says otherwise)."""
        if isinstance(value, Tensor):
            return value
        if hasattr(value, "dtype") and hasattr(value, "shape") and hasattr(value, "tolist"):
            kind = getattr(value.dtype, "kind", "")
            datatype = datatype or ("BYTES" if kind in "OSU" else _DATATYPES.get(str(value.dtype)))
            if datatype is None:
                raise TypeError(f"input {name!r}: no protocol datatype for dtype {value.dtype}")
            return cls(name, datatype, tuple(int(n) for n in value.shape), _flat(value.tolist()))
        data = _flat(value)
        if datatype is None:
            if not data:
                raise TypeError(f"input {name!r} is empty: give its datatype")
            datatype = _python_datatype(data[0])
        return cls(name, datatype, tuple(_shape(value)), data)

    def to_json(self) -> dict[str, Any]:
        data = [e.decode() if isinstance(e, bytes) else e for e in self.data]
        return {
            "name": self.name,
            "datatype": self.datatype,
            "shape": list(self.shape),
            "data": data,
        }

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Tensor:
        return cls(
            str(item["name"]),
            str(item["datatype"]),
            tuple(int(n) for n in item["shape"]),
            _flat(item.get("data", [])),
        )

    def numpy(self) -> Any:
        """The tensor as a numpy array of its shape (needs numpy; BYTES as an object array of
        ``str``)."""
        import numpy as np

        dtype = object if self.datatype == "BYTES" else _NUMPY_TYPES[self.datatype]
        return np.array(self.data, dtype=dtype).reshape(self.shape)


@dataclass(frozen=True)
class InferResult:
    """An inference answer of the Open Inference Protocol; ``result["name"]`` is an output."""

    model_name: str
    model_version: str | None
    outputs: tuple[Tensor, ...]
    id: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> InferResult:
        return cls(
            model_name=str(body.get("model_name", "")),
            model_version=body.get("model_version"),
            outputs=tuple(Tensor.from_json(item) for item in body.get("outputs", [])),
            id=body.get("id"),
            parameters=dict(body.get("parameters") or {}),
        )

    def __getitem__(self, name: str) -> Tensor:
        for output in self.outputs:
            if output.name == name:
                return output
        raise KeyError(f"no output {name!r}; the outputs are {[o.name for o in self.outputs]}")
