"""app.protocol._tensors: the protocol's datatypes, JSON data and binary data as numpy."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from app.errors import BadInferenceRequest
from app.protocol._tensors import (
    DATATYPES,
    datatype_of,
    from_binary,
    from_json,
    shape_matches,
    to_binary,
    to_json_data,
)


@pytest.mark.parametrize(
    ("dtype", "datatype"),
    [("float32", "FP32"), ("float64", "FP64"), ("float16", "FP16"), ("int64", "INT64"),
     ("uint8", "UINT8"), ("bool", "BOOL"), ("object", "BYTES"), ("<U4", "BYTES")],
)  # fmt: skip
def test_numpy_dtypes_map_to_the_protocols_datatypes(dtype, datatype):
    assert datatype_of(dtype) == datatype


def test_nested_and_flat_json_data_give_the_same_row_major_array():
    nested = from_json("x", "FP32", (2, 3), [[1, 2, 3], [4, 5, 6]])
    flat = from_json("x", "FP32", (2, 3), [1, 2, 3, 4, 5, 6])
    deep = from_json("x", "FP32", (2, 3), [[[1], [2], [3]], [[4], [5], [6]]])
    assert nested.dtype == np.float32 and nested.shape == (2, 3)
    np.testing.assert_array_equal(nested, np.arange(1, 7, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(nested, flat)
    np.testing.assert_array_equal(nested, deep)


@pytest.mark.parametrize(
    ("datatype", "data", "message"),
    [
        ("FP32", [1, 2, 3], "6 elements"),  # too few for the shape
        ("FP32", [1, 2, 3, 4, 5, "6"], "must be numbers"),
        ("FP32", [1, 2, 3, 4, 5, None], "must be numbers"),
        ("INT64", [1, 2, 3, 4, 5, 6.5], "must be integers"),
        ("INT8", [1, 2, 3, 4, 5, 300], "outside INT8"),
        ("UINT8", [1, 2, 3, 4, 5, -1], "outside UINT8"),
        ("BOOL", [1, 0, 1, 0, 1, 0], "true or false"),
        ("BYTES", ["a", "b", "c", "d", "e", 6], "must be strings"),
    ],
)
def test_json_data_that_does_not_fit_its_datatype_or_shape_is_refused(datatype, data, message):
    with pytest.raises(BadInferenceRequest, match=message):
        from_json("x", datatype, (2, 3), data)


def test_bytes_travel_as_utf8_strings_in_json():
    array = from_json("text", "BYTES", (2,), ["héllo", "chat"])
    assert array.dtype == object and list(array) == ["héllo".encode(), b"chat"]
    assert to_json_data(array) == ["héllo", "chat"]


@pytest.mark.parametrize("datatype", [d for d in DATATYPES if d != "BYTES"])
def test_binary_data_round_trips_for_every_fixed_size_datatype(datatype):
    dtype = DATATYPES[datatype]
    array = (np.arange(6) % 2 == 0) if datatype == "BOOL" else np.arange(6).astype(dtype)
    array = array.reshape(2, 3)
    raw = to_binary(array)
    assert len(raw) == 6 * dtype.itemsize  # little-endian raw elements, nothing else
    back = from_binary("x", datatype, (2, 3), raw)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, array)


def test_binary_bytes_elements_are_length_prefixed():
    array = np.array([b"chat", b"", b"rat"], dtype=object)
    raw = to_binary(array)
    assert raw == struct.pack("<I", 4) + b"chat" + struct.pack("<I", 0) + struct.pack("<I", 3) + (
        b"rat"
    )
    assert list(from_binary("t", "BYTES", (3,), raw)) == [b"chat", b"", b"rat"]


@pytest.mark.parametrize(
    ("datatype", "shape", "raw", "message"),
    [
        ("FP32", (2,), b"\x00" * 7, "8 bytes"),
        ("BYTES", (1,), struct.pack("<I", 10) + b"abc", "cut short"),
        ("BYTES", (1,), b"\x01\x00", "cut short"),
        ("BYTES", (2,), struct.pack("<I", 1) + b"a", "holds 1 elements"),
    ],
)
def test_binary_data_that_does_not_fit_is_refused(datatype, shape, raw, message):
    with pytest.raises(BadInferenceRequest, match=message):
        from_binary("x", datatype, shape, raw)


def test_declared_shapes_match_with_minus_one_as_any_size():
    assert shape_matches((-1, 2), (5, 2))
    assert not shape_matches((-1, 2), (5, 3))
    assert not shape_matches((-1, 2), (5, 2, 1))
