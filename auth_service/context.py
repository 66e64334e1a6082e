"""What the routes share, kept on app.state.context."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from auth_service.clock import Clock
from auth_service.db import Database
from auth_service.metrics import AuthMetrics
from auth_service.service import AuthService
from auth_service.settings import AuthSettings
from auth_service.store import Store
from auth_service.verification import VerificationPool


@dataclass(frozen=True)
class AppContext:
    settings: AuthSettings
    clock: Clock
    database: Database
    store: Store
    service: AuthService
    verifier: VerificationPool
    metrics: AuthMetrics


def app_context(request: Request) -> AppContext:
    return request.app.state.context
