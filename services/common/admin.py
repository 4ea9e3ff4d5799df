"""Admin endpoints: set/clear faults and read request statistics at run time (tests drive these).

Kept out of the public OpenAPI document: they are an operator's tool, not part of the source API.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.common.auth import admin_auth
from services.common.errors import ApiError
from services.common.faults import FaultState


def _json(doc: object) -> Response:
    return Response(content=orjson.dumps(doc), media_type="application/json")


def admin_router(state: FaultState, admin_token: str) -> APIRouter:
    router = APIRouter(
        prefix="/admin", include_in_schema=False, dependencies=[Depends(admin_auth(admin_token))]
    )

    @router.get("/faults")
    def get_faults() -> Response:
        return _json({"faults": state.faults})

    @router.put("/faults")
    async def put_faults(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body() or b"{}")
        except orjson.JSONDecodeError:
            raise ApiError(422, "invalid_faults", "body is not JSON") from None
        state.set(body)
        return _json({"faults": state.faults})

    @router.delete("/faults")
    def delete_faults() -> Response:
        state.clear()
        return _json({"faults": state.faults})

    @router.get("/stats")
    def get_stats() -> Response:
        return _json(state.stats_doc())

    @router.post("/stats/reset")
    def reset_stats() -> Response:
        state.reset_stats()
        return _json(state.stats_doc())

    return router
