"""Inference requests and responses: typed, from and to the bytes of the protocol.

A request body is JSON, or, with Triton's binary tensor data extension, a JSON header of
`Inference-Header-Content-Length` bytes followed by the binary data of the inputs that declare
`parameters.binary_data_size`, in the order of the inputs. A response sends an output as binary
when the request asks (`outputs[i].parameters.binary_data`, or `parameters.binary_data_output`
for every output) and then has the same layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from app.errors import BadInferenceRequest
from app.protocol._tensors import (
    DATATYPES,
    check_shape,
    from_binary,
    from_json,
    to_binary,
    to_json_data,
)

HEADER_LENGTH = "inference-header-content-length"
BINARY_CONTENT_TYPE = "application/octet-stream"
JSON_CONTENT_TYPE = "application/json"


@dataclass
class InputTensor:
    name: str
    datatype: str
    array: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass
class RequestedOutput:
    name: str
    binary: bool


@dataclass
class InferRequest:
    inputs: list[InputTensor]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[RequestedOutput] | None = None  # None: every output
    binary_output: bool = False  # the default for outputs not named in `outputs`


@dataclass
class OutputTensor:
    name: str
    datatype: str
    array: np.ndarray


@dataclass
class InferResponse:
    model_name: str
    model_version: str
    outputs: list[OutputTensor]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)


def _object(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadInferenceRequest(f"{what} must be a JSON object.")
    return value


def _header_length(header: str | None, body_length: int) -> int | None:
    if header is None:
        return None
    if not header.strip().isdigit() or int(header) > body_length:
        raise BadInferenceRequest(
            f"Inference-Header-Content-Length must be a byte count within the body's "
            f"{body_length} bytes, not {header!r}."
        )
    return int(header)


def parse_request(body: bytes, header_length: str | None = None) -> InferRequest:
    """A request from its body and its Inference-Header-Content-Length header (if any)."""
    length = _header_length(header_length, len(body))
    header, binary = (body, b"") if length is None else (body[:length], body[length:])
    try:
        payload = orjson.loads(header)
    except (ValueError, UnicodeDecodeError):
        raise BadInferenceRequest("The inference request's JSON cannot be parsed.") from None
    if not isinstance(payload, dict):
        raise BadInferenceRequest("The inference request must be a JSON object.")
    raw_inputs = payload.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise BadInferenceRequest("The inference request needs a non-empty list 'inputs'.")
    inputs, offset, names = [], 0, set()
    for raw in raw_inputs:
        tensor, offset = _input(raw, binary, offset)
        if tensor.name in names:
            raise BadInferenceRequest(f"Input '{tensor.name}' is given twice.")
        names.add(tensor.name)
        inputs.append(tensor)
    if offset != len(binary):
        raise BadInferenceRequest(
            f"The body has {len(binary) - offset} bytes of binary data that no input claims."
        )
    parameters = _object(payload.get("parameters"), "'parameters'")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadInferenceRequest("'id' must be a string.")
    binary_output = parameters.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise BadInferenceRequest("'parameters.binary_data_output' must be true or false.")
    outputs = None
    if payload.get("outputs") is not None:
        outputs = _requested_outputs(payload["outputs"], binary_output)
    return InferRequest(inputs, request_id, parameters, outputs, binary_output)


def _input(raw: Any, binary: bytes, offset: int) -> tuple[InputTensor, int]:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise BadInferenceRequest("Each input must be an object with a string 'name'.")
    name = raw["name"]
    datatype = raw.get("datatype")
    if datatype not in DATATYPES:
        raise BadInferenceRequest(
            f"Input '{name}' has datatype {datatype!r}; use one of {', '.join(DATATYPES)}."
        )
    shape = check_shape(name, raw.get("shape"))
    parameters = _object(raw.get("parameters"), f"Input '{name}' parameters")
    size = parameters.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadInferenceRequest(f"Input '{name}': binary_data_size must be a byte count.")
        if "data" in raw:
            raise BadInferenceRequest(f"Input '{name}' has both 'data' and binary data.")
        if offset + size > len(binary):
            raise BadInferenceRequest(
                f"Input '{name}' declares {size} bytes of binary data; the body has "
                f"{len(binary) - offset} left (is Inference-Header-Content-Length right?)."
            )
        array = from_binary(name, datatype, shape, binary[offset : offset + size])
        return InputTensor(name, datatype, array, parameters), offset + size
    if "data" not in raw:
        raise BadInferenceRequest(f"Input '{name}' has neither 'data' nor binary data.")
    return InputTensor(name, datatype, from_json(name, datatype, shape, raw["data"]), parameters), (
        offset
    )


def _requested_outputs(raw: Any, binary_default: bool) -> list[RequestedOutput]:
    if not isinstance(raw, list):
        raise BadInferenceRequest("'outputs' must be a list of objects with a 'name'.")
    outputs = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise BadInferenceRequest("Each requested output must be an object with a 'name'.")
        parameters = _object(item.get("parameters"), f"Output '{item['name']}' parameters")
        binary = parameters.get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise BadInferenceRequest(f"Output '{item['name']}': binary_data must be a boolean.")
        outputs.append(RequestedOutput(item["name"], binary))
    return outputs


def encode_response(response: InferResponse, binary: dict[str, bool]) -> tuple[bytes, int | None]:
    """The body, and the JSON header's length when some output went binary (else None)."""
    outputs, chunks = [], []
    for output in response.outputs:
        entry: dict[str, Any] = {
            "name": output.name,
            "datatype": output.datatype,
            "shape": list(output.array.shape),
        }
        if binary.get(output.name, False):
            raw = to_binary(output.array)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = to_json_data(output.array)
        outputs.append(entry)
    document: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": outputs,
    }
    if response.id is not None:
        document["id"] = response.id
    if response.parameters:
        document["parameters"] = response.parameters
    # orjson writes numpy arrays itself (float32 as its shortest repr): about 30x faster than
    # json.dumps of tolist() for an image-sized output.
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)
