"""Tensors of the Open Inference Protocol: datatypes, JSON data and binary data, as numpy.

A tensor travels as `{"name", "datatype", "shape", "data"}` with `data` the elements in
row-major order, flat or nested; or, with Triton's binary tensor data extension, as raw
little-endian bytes after the JSON header (`parameters.binary_data_size`). BYTES elements are
strings in JSON and, in binary, each one a 4-byte little-endian length then its bytes.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from app.errors import BadInferenceRequest

# The protocol's datatypes and numpy's; BYTES is an object array of `bytes`.
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_BY_NUMPY = {dtype: name for name, dtype in DATATYPES.items() if name != "BYTES"}
_LENGTH = struct.Struct("<I")


def datatype_of(dtype: str | np.dtype) -> str:
    """The protocol's name of a numpy dtype ("float32" -> "FP32"; str and bytes -> "BYTES")."""
    dtype = np.dtype(dtype)
    if dtype.kind in "OSU":
        return "BYTES"
    try:
        return _BY_NUMPY[dtype.newbyteorder("=")]
    except KeyError:
        raise ValueError(f"no Open Inference Protocol datatype for {dtype}") from None


def check_shape(name: str, shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise BadInferenceRequest(
            f"Input '{name}' needs a shape: a list of non-negative integers, not {shape!r}."
        )
    return tuple(shape)


def _flatten(data: Any) -> list[Any]:
    """Nested lists of elements (any depth) as one flat list, row-major."""
    if not isinstance(data, list):
        return [data]
    if not data or not isinstance(data[0], list):
        return data
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _json_bytes(name: str, elements: list[Any]) -> np.ndarray:
    array = np.empty(len(elements), dtype=object)
    for index, element in enumerate(elements):
        if not isinstance(element, str):
            raise BadInferenceRequest(
                f"Input '{name}' is BYTES: its JSON data must be strings, not {element!r}."
            )
        array[index] = element.encode()
    return array


def from_json(name: str, datatype: str, shape: tuple[int, ...], data: Any) -> np.ndarray:
    """A tensor's JSON `data` (flat or nested) as an array of `shape`."""
    elements = _flatten(data)
    if len(elements) != math.prod(shape):
        raise BadInferenceRequest(
            f"Input '{name}' has shape {list(shape)}, so {math.prod(shape)} elements, "
            f"but its data holds {len(elements)}."
        )
    if datatype == "BYTES":
        return _json_bytes(name, elements).reshape(shape)
    dtype = DATATYPES[datatype]
    values = np.asarray(elements)  # numpy infers: bool, int, float; strings or None otherwise
    if len(elements) and not _fits(values.dtype, dtype):
        kind = {"b": "true or false", "f": "numbers", "i": "integers", "u": "integers"}
        raise BadInferenceRequest(
            f"Input '{name}' is {datatype}: its data must be {kind[dtype.kind]}."
        )
    if dtype.kind in "iu" and len(elements):
        limits = np.iinfo(dtype)
        if int(values.min()) < limits.min or int(values.max()) > limits.max:
            raise BadInferenceRequest(f"Input '{name}' holds integers outside {datatype}.")
    return values.astype(dtype, copy=False).reshape(shape)


def _fits(given: np.dtype, wanted: np.dtype) -> bool:
    if wanted.kind == "b":
        return given.kind == "b"
    if wanted.kind == "f":
        return given.kind in "iuf"
    return given.kind in "iu"  # integers: no floats, no booleans


def from_binary(name: str, datatype: str, shape: tuple[int, ...], raw: bytes) -> np.ndarray:
    """A tensor's binary data (Triton's extension) as an array of `shape`."""
    count = math.prod(shape)
    if datatype == "BYTES":
        elements, offset = [], 0
        while offset < len(raw):
            if offset + 4 > len(raw):
                raise BadInferenceRequest(f"Input '{name}': a BYTES element is cut short.")
            (length,) = _LENGTH.unpack_from(raw, offset)
            offset += 4
            if offset + length > len(raw):
                raise BadInferenceRequest(f"Input '{name}': a BYTES element is cut short.")
            elements.append(bytes(raw[offset : offset + length]))
            offset += length
        if len(elements) != count:
            raise BadInferenceRequest(
                f"Input '{name}' has shape {list(shape)} but its binary data holds "
                f"{len(elements)} elements."
            )
        array = np.empty(count, dtype=object)
        array[:] = elements
        return array.reshape(shape)
    dtype = DATATYPES[datatype].newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise BadInferenceRequest(
            f"Input '{name}' has shape {list(shape)} of {datatype}, so "
            f"{count * dtype.itemsize} bytes, but its binary data has {len(raw)}."
        )
    array = np.frombuffer(raw, dtype=dtype).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def to_json_data(array: np.ndarray) -> list[Any] | np.ndarray:
    """An output's elements, flat and row-major: strings for BYTES, else a contiguous numpy
    array that orjson writes as numbers (float16 widened: orjson has no half floats)."""
    if array.dtype == object or array.dtype.kind in "SU":
        return [_text(element) for element in array.reshape(-1)]
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    return np.ascontiguousarray(array.reshape(-1))


def _text(element: Any) -> str:
    if isinstance(element, bytes):
        return element.decode("utf-8", errors="replace")
    return str(element)


def to_binary(array: np.ndarray) -> bytes:
    """An output's elements as the binary extension sends them."""
    if array.dtype == object or array.dtype.kind in "SU":
        parts = []
        for element in array.reshape(-1):
            raw = element if isinstance(element, bytes) else str(element).encode()
            parts += [_LENGTH.pack(len(raw)), raw]
        return b"".join(parts)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def shape_matches(declared: Sequence[int], shape: Sequence[int]) -> bool:
    """Whether `shape` fits a declared shape, where -1 stands for any size."""
    return len(declared) == len(shape) and all(
        d in (-1, s) for d, s in zip(declared, shape, strict=True)
    )
