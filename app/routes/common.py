"""What every route shares: the registry and settings from the app, and answer helpers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from app.registry import Registry, Servable
from app.settings import Settings

OutputFormat = Literal["json", "png"]


def _registry(request: Request) -> Registry:
    return request.app.state.registry


def _settings(request: Request) -> Settings:
    return request.app.state.settings


RegistryDep = Annotated[Registry, Depends(_registry)]
SettingsDep = Annotated[Settings, Depends(_settings)]


class ModelRef(BaseModel):
    name: str
    version: int


class ErrorBody(BaseModel):
    error: str
    detail: str


class ProtocolErrorBody(BaseModel):
    """An error under /v2: the Open Inference Protocol's shape, with our code beside it."""

    error: str
    code: str


def model_ref(servable: Servable) -> dict[str, Any]:
    return {"name": servable.name, "version": servable.version}


def png_response(data: bytes, servable: Servable) -> Response:
    return Response(
        data,
        media_type="image/png",
        headers={"X-Model-Name": servable.name, "X-Model-Version": str(servable.version)},
    )


def error_responses(
    *codes: int, body: type[BaseModel] = ErrorBody
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error answers a route can give."""
    descriptions = {
        400: "A protocol request that does not fit the model (shape, datatype, names).",
        404: "Unknown model or route.",
        409: "The requested version was refused.",
        413: "Body, image or text above the configured limits.",
        415: "Not an image, or an unsupported format.",
        422: "Missing field, wrong type, out-of-range parameter or unreadable input.",
        503: "Model not loaded yet, or its queue is full (see Retry-After).",
    }
    return {code: {"model": body, "description": descriptions[code]} for code in codes}


def ok_example(example: Any, png: str | None = None) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI 200 entry with an example answer (and a PNG alternative if `png` says what)."""
    content: dict[str, Any] = {"application/json": {"example": example}}
    if png is not None:
        content["image/png"] = {"schema": {"type": "string", "format": "binary"}}
    description = "JSON" + (f", or with format=png {png}" if png else "")
    return {200: {"description": description, "content": content}}


FormatQuery = Annotated[
    OutputFormat, Query(description="json, or an image/png answer.", examples=["json", "png"])
]
