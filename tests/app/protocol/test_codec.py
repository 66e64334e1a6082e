"""app.protocol._codec: inference requests and responses from and to the protocol's bytes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.errors import BadInferenceRequest
from app.protocol import InferResponse, OutputTensor, encode_response, parse_request


def _binary_request(header: dict, *chunks: bytes) -> tuple[bytes, str]:
    raw = json.dumps(header).encode()
    return raw + b"".join(chunks), str(len(raw))


def test_a_json_request_gives_typed_inputs_outputs_id_and_parameters():
    body = json.dumps({
        "id": "r-1",
        "parameters": {"confidence": 0.5},
        "inputs": [{"name": "latent", "datatype": "FP32", "shape": [1, 2], "data": [0.5, 1]}],
        "outputs": [{"name": "image", "parameters": {"binary_data": True}}],
    }).encode()  # fmt: skip
    request = parse_request(body)
    assert request.id == "r-1" and request.parameters == {"confidence": 0.5}
    (tensor,) = request.inputs
    assert tensor.name == "latent" and tensor.datatype == "FP32"
    np.testing.assert_array_equal(tensor.array, np.array([[0.5, 1.0]], np.float32))
    assert [(o.name, o.binary) for o in request.outputs] == [("image", True)]


def test_binary_inputs_are_read_in_order_after_the_json_header():
    first, second = np.arange(4, dtype=np.float32), np.array([7, 8], np.int64)
    body, length = _binary_request(
        {"inputs": [
            {"name": "a", "datatype": "FP32", "shape": [2, 2],
             "parameters": {"binary_data_size": first.nbytes}},
            {"name": "b", "datatype": "INT64", "shape": [2], "data": [7, 8]},
            {"name": "c", "datatype": "INT64", "shape": [2],
             "parameters": {"binary_data_size": second.nbytes}},
        ], "parameters": {"binary_data_output": True}},
        first.tobytes(), second.tobytes(),
    )  # fmt: skip
    request = parse_request(body, length)
    a, b, c = (tensor.array for tensor in request.inputs)
    np.testing.assert_array_equal(a, first.reshape(2, 2))
    np.testing.assert_array_equal(b, second)
    np.testing.assert_array_equal(c, second)
    assert request.binary_output is True and request.outputs is None


@pytest.mark.parametrize(
    ("body", "length", "message"),
    [
        (b"{not json", None, "cannot be parsed"),
        (b"[1, 2]", None, "JSON object"),
        (b"{}", None, "non-empty list 'inputs'"),
        (b'{"inputs": [{"name": "x", "datatype": "FP33", "shape": [1], "data": [1]}]}', None,
         "datatype 'FP33'"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}]}', None,
         "needs a shape"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}', None,
         "neither 'data' nor binary"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]},'
         b' {"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}', None, "twice"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}', "999",
         "within the body"),
        (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}', "-3",
         "byte count"),
        (b'{"id": 5, "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}',
         None, "'id' must be a string"),
        (b'{"outputs": "image", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], '
         b'"data": [1]}]}', None, "'outputs' must be a list"),
    ],
)  # fmt: skip
def test_malformed_requests_are_refused_with_what_to_change(body, length, message):
    with pytest.raises(BadInferenceRequest, match=message):
        parse_request(body, length)


def test_binary_data_must_be_claimed_exactly():
    header = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2],
                          "parameters": {"binary_data_size": 8}}]}  # fmt: skip
    body, length = _binary_request(header, b"\x00" * 12)  # 4 bytes too many
    with pytest.raises(BadInferenceRequest, match="no input claims"):
        parse_request(body, length)
    body, length = _binary_request(header, b"\x00" * 4)  # 4 bytes short
    with pytest.raises(BadInferenceRequest, match="declares 8 bytes"):
        parse_request(body, length)


def test_a_response_sends_binary_outputs_after_its_json_header():
    image = np.linspace(0, 1, 6, dtype=np.float32).reshape(1, 2, 3)
    labels = np.array([b"chat"], dtype=object)
    response = InferResponse(
        "m", "2", [OutputTensor("image", "FP32", image), OutputTensor("label", "BYTES", labels)],
        id="r-9",
    )  # fmt: skip
    body, length = encode_response(response, {"image": True, "label": False})
    header = json.loads(body[:length])
    assert header["id"] == "r-9" and header["model_version"] == "2"
    image_entry, label_entry = header["outputs"]
    assert image_entry == {"name": "image", "datatype": "FP32", "shape": [1, 2, 3],
                           "parameters": {"binary_data_size": 24}}  # fmt: skip
    assert label_entry["data"] == ["chat"]
    np.testing.assert_array_equal(np.frombuffer(body[length:], np.float32).reshape(1, 2, 3), image)
    json_body, no_length = encode_response(response, {})
    assert no_length is None
    data = json.loads(json_body)["outputs"][0]["data"]  # float32 written as its shortest repr
    assert data[1] == 0.2
    np.testing.assert_array_equal(np.array(data, np.float32), image.ravel())
