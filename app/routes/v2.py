"""`/v2/...`: the Open Inference Protocol's REST routes, a thin edge over `app.protocol`.

Health, server and model metadata, model readiness and inference, as KServe, Triton and
MLServer serve them; `tritonclient.http` works against these routes (with binary data too).
Errors are the protocol's `{"error": "<sentence>"}` (with our `code` beside it).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response

from app.errors import ModelUnavailable
from app.protocol import (
    BINARY_CONTENT_TYPE,
    HEADER_LENGTH,
    InferenceProtocol,
    encode_response,
    parse_request,
)
from app.routes.common import ProtocolErrorBody, ok_example
from app.routes.common import error_responses as _error_responses

router = APIRouter(prefix="/v2", tags=["open inference protocol"])

# Bodies above this are parsed in a worker thread: parsing a large image holds the loop; the
# same for answers above this many elements.
PARSE_IN_THREAD_BYTES = 256 * 1024
ENCODE_IN_THREAD_ELEMENTS = 64 * 1024

ModelName = Annotated[str, Path(description="A served model.", examples=["vae"])]
ModelVersion = Annotated[str, Path(description="The served version.", examples=["2"])]

INFER_EXAMPLE = {
    "inputs": [{"name": "latent", "datatype": "FP32", "shape": [1, 2], "data": [0.0, 0.5]}]
}
INFER_ANSWER = {
    "model_name": "vae",
    "model_version": "2",
    "outputs": [{"name": "image", "datatype": "FP32", "shape": [1, 28, 28], "data": [0.0]}],
}
METADATA_EXAMPLE = {
    "name": "vae",
    "versions": ["2"],
    "platform": "onnxruntime_onnx",
    "inputs": [{"name": "latent", "datatype": "FP32", "shape": [-1, 2]}],
    "outputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 28, 28]}],
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return _error_responses(*codes, body=ProtocolErrorBody)


def _protocol(request: Request) -> InferenceProtocol:
    return request.app.state.protocol


@router.get(
    "",
    summary="Server metadata",
    responses=ok_example({"name": "model-gateway", "version": "0.1.0", "extensions": []}),
)
async def server_metadata(request: Request) -> dict[str, Any]:
    return _protocol(request).server_metadata()


@router.get("/health/live", summary="The server is alive", responses=ok_example({"live": True}))
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get(
    "/health/ready",
    summary="Every configured model is loaded",
    responses={
        **ok_example({"ready": True}),
        503: {
            "description": "Some model is not loaded yet.",
            "content": {"application/json": {"example": {"ready": False}}},
        },
    },
)
async def ready(request: Request) -> JSONResponse:
    is_ready = _protocol(request).server_ready()
    return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)


@router.get(
    "/models/{name}",
    summary="Model metadata",
    responses={**ok_example(METADATA_EXAMPLE), **error_responses(404, 503)},
)
async def model_metadata(name: ModelName, request: Request) -> dict[str, Any]:
    """Platform, served version, and the inputs and outputs with datatype and shape."""
    return await _protocol(request).model_metadata(name)


@router.get(
    "/models/{name}/versions/{version}",
    summary="Model metadata of a version",
    responses={**ok_example(METADATA_EXAMPLE), **error_responses(404, 503)},
)
async def version_metadata(name: ModelName, version: ModelVersion, request: Request) -> Any:
    return await _protocol(request).model_metadata(name, version)


CONFIG_EXAMPLE = {
    "name": "vae",
    "platform": "onnxruntime_onnx",
    "max_batch_size": 32,
    "input": [{"name": "latent", "data_type": "TYPE_FP32", "dims": [2]}],
    "output": [{"name": "image", "data_type": "TYPE_FP32", "dims": [28, 28]}],
    "version_policy": {"specific": {"versions": [2]}},
    "dynamic_batching": {"max_queue_delay_microseconds": 2000},
}


@router.get(
    "/models/{name}/config",
    summary="Model configuration (Triton's extension)",
    responses={**ok_example(CONFIG_EXAMPLE), **error_responses(404, 503)},
)
async def model_config(name: ModelName, request: Request) -> dict[str, Any]:
    """Tensors without the batch axis, the batch size and the batching delay it is served with."""
    return await _protocol(request).model_config(name)


@router.get(
    "/models/{name}/versions/{version}/config",
    summary="Model configuration of a version",
    responses={**ok_example(CONFIG_EXAMPLE), **error_responses(404, 503)},
)
async def version_config(name: ModelName, version: ModelVersion, request: Request) -> Any:
    return await _protocol(request).model_config(name, version)


async def _ready(request: Request, name: str, version: str | None) -> JSONResponse:
    if not _protocol(request).model_ready(name, version):
        at = f" at version {version}" if version else ""
        raise ModelUnavailable(f"Model '{name}' is not ready{at}.")
    return JSONResponse({"name": name, "ready": True})


@router.get(
    "/models/{name}/ready",
    summary="The model is loaded",
    responses={**ok_example({"name": "vae", "ready": True}), **error_responses(404, 503)},
)
async def model_ready(name: ModelName, request: Request) -> JSONResponse:
    return await _ready(request, name, None)


@router.get(
    "/models/{name}/versions/{version}/ready",
    summary="That version of the model is served",
    responses={**ok_example({"name": "vae", "ready": True}), **error_responses(404, 503)},
)
async def version_ready(name: ModelName, version: ModelVersion, request: Request) -> JSONResponse:
    return await _ready(request, name, version)


INFER_OK = ok_example(INFER_ANSWER)
# A media type object has no description (OpenAPI 3.1, openapi-spec-validator): the schema's.
INFER_OK[200]["content"][BINARY_CONTENT_TYPE] = {
    "schema": {
        "type": "string",
        "format": "binary",
        "description": "With binary outputs: the JSON header, then the outputs' binary data.",
    },
}
INFER_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"example": INFER_EXAMPLE},
            BINARY_CONTENT_TYPE: {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "A JSON header of Inference-Header-Content-Length bytes, "
                    "then the inputs' binary data (Triton's binary tensor data extension).",
                },
            },
        },
    }
}


async def _infer(request: Request, name: str, version: str | None) -> Response:
    _protocol(request).model_ready(name)  # an unknown model is 404 whatever the body holds
    body = await request.body()
    header = request.headers.get(HEADER_LENGTH)
    if len(body) > PARSE_IN_THREAD_BYTES:
        parsed = await asyncio.to_thread(parse_request, body, header)
    else:
        parsed = parse_request(body, header)
    response, binary = await _protocol(request).infer(name, version, parsed)
    if sum(output.array.size for output in response.outputs) > ENCODE_IN_THREAD_ELEMENTS:
        content, header_length = await asyncio.to_thread(encode_response, response, binary)
    else:  # a thread hop costs more than encoding a small answer with orjson
        content, header_length = encode_response(response, binary)
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(
        content,
        media_type=BINARY_CONTENT_TYPE,
        headers={"Inference-Header-Content-Length": str(header_length)},
    )


@router.post(
    "/models/{name}/infer",
    summary="Inference",
    openapi_extra=INFER_OPENAPI,
    responses={**INFER_OK, **error_responses(400, 404, 413, 422, 503)},
)
async def infer(name: ModelName, request: Request) -> Response:
    """Inputs by name, datatype and shape, as JSON data or binary data; the model's outputs
    (or those asked for in `outputs`), the request's `id` echoed."""
    return await _infer(request, name, None)


@router.post(
    "/models/{name}/versions/{version}/infer",
    summary="Inference on a version",
    openapi_extra=INFER_OPENAPI,
    responses={**INFER_OK, **error_responses(400, 404, 413, 422, 503)},
)
async def infer_version(name: ModelName, version: ModelVersion, request: Request) -> Response:
    return await _infer(request, name, version)
