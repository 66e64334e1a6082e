"""The Open Inference Protocol (KServe v2, with Triton's binary tensor data extension).

    protocol = InferenceProtocol(registry, settings, version="0.1.0")
    request = parse_request(body, headers.get("inference-header-content-length"))
    response, binary = await protocol.infer("vae", None, request)
    body, header_length = encode_response(response, binary)

`app.routes.v2` is the HTTP edge over this; docs/app.md describes the protocol as served.
"""

from app.protocol._codec import (
    BINARY_CONTENT_TYPE,
    HEADER_LENGTH,
    InferRequest,
    InferResponse,
    InputTensor,
    OutputTensor,
    RequestedOutput,
    encode_response,
    parse_request,
)
from app.protocol._core import InferenceProtocol
from app.protocol._models import TensorSpec
from app.protocol._tensors import DATATYPES, datatype_of

__all__ = [
    "BINARY_CONTENT_TYPE",
    "DATATYPES",
    "HEADER_LENGTH",
    "InferRequest",
    "InferResponse",
    "InferenceProtocol",
    "InputTensor",
    "OutputTensor",
    "RequestedOutput",
    "TensorSpec",
    "datatype_of",
    "encode_response",
    "parse_request",
]
