"""The app factory every service builds on: health, admin, error envelopes, faults, DB checks at start.

Handlers return `Response(content=bytes)` built from pre-rendered docs; the factory wires everything
around them once, so each service module only holds its endpoints.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI
from fastapi.responses import Response

from services.common.admin import admin_router
from services.common.db import ReadOnlyDB
from services.common.errors import install_error_handlers
from services.common.faults import FaultMiddleware, FaultState
from services.common.schemas import Health
from services.common.settings import ServiceSettings

log = logging.getLogger("services")


def json_response(body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(content=body, media_type="application/json", headers=headers)


def create_app(
    settings: ServiceSettings,
    description: str,
    tables: tuple[str, ...],
    list_paths: frozenset[str],
) -> FastAPI:
    """A FastAPI app for one service with everything but its data endpoints."""
    db = ReadOnlyDB(settings.db_path)
    faults = FaultState(settings.faults)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        db.check_tables(*tables)
        log.warning(
            "%s serving %s (faults: %s)", settings.name, settings.db_path, sorted(faults.faults) or "none"
        )
        yield

    app = FastAPI(
        title=f"shop {settings.name}",
        version="1.0.0",
        description=description,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = db
    app.state.faults = faults
    install_error_handlers(app)
    app.include_router(admin_router(faults, settings.admin_token))
    health_body = orjson.dumps({"status": "ok", "service": settings.name})

    @app.get(
        "/health",
        response_class=Response,
        responses={200: {"model": Health, "description": "the service is up"}},
        tags=["health"],
    )
    def health() -> Response:
        """Liveness (no auth)."""
        return json_response(health_body)

    app.add_middleware(FaultMiddleware, state=faults, list_paths=list_paths)
    return app
