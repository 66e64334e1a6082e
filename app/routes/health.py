"""`/healthz`, `/readyz` and `/metrics`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.routes.common import RegistryDep, ok_example

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive", responses=ok_example({"status": "ok"}))
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Every configured model is loaded and warmed",
    responses={
        **ok_example({"ready": True, "models": {"detector": "AVAILABLE", "vae": "AVAILABLE"}}),
        503: {"description": "Some model is not loaded yet."},
    },
)
async def readyz(registry: RegistryDep) -> JSONResponse:
    ready = registry.is_ready()
    return JSONResponse(
        {"ready": ready, "models": registry.states()}, status_code=200 if ready else 503
    )


METRICS_EXAMPLE = 'app_http_requests_total{method="GET",route="/vae/sample",status="200"} 12.0\n'


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"example": METRICS_EXAMPLE}}}},
)
async def metrics(request: Request) -> Response:
    collected = request.app.state.metrics
    return Response(collected.render(), media_type=collected.content_type)
