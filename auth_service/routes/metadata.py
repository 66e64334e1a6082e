"""GET /.well-known/oauth-authorization-server (RFC 8414): public, no client authentication."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from auth_service import openapi
from auth_service.context import app_context
from auth_service.discovery import METADATA_PATH, authorization_server_metadata
from auth_service.settings import GATEWAY_SCOPES

router = APIRouter()

# The document changes only with the settings, i.e. on a restart: caches may keep it a while.
CACHE_CONTROL = "public, max-age=300"


@router.get(METADATA_PATH, **openapi.METADATA)
async def metadata(request: Request) -> Response:
    issuer = app_context(request).settings.issuer
    return JSONResponse(
        authorization_server_metadata(issuer, GATEWAY_SCOPES),
        headers={"Cache-Control": CACHE_CONTROL},
    )
