"""JSON error envelopes for every failure, including FastAPI's own validation and routing errors.

Clients (the dlt loaders) must be able to tell a 401 from a 422 from a fault by the body alone, so every
error, wherever it comes from, has the shape `{"error": {"code", "message", "status"}}`.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("services.errors")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    422: "invalid_parameter",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error a handler raises to answer with an envelope (status, machine code, human message)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_body(status: int, code: str, message: str, details: list | None = None) -> bytes:
    err: dict = {"code": code, "message": message, "status": status}
    if details:
        err["details"] = details
    return orjson.dumps({"error": err})


def error_response(
    status: int, code: str | None = None, message: str = "", headers: dict[str, str] | None = None
) -> Response:
    code = code or _CODES.get(status, "error")
    return Response(
        content=error_body(status, code, message or code.replace("_", " ")),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Replace FastAPI's default error formats with the contract's envelope."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        details = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        where = ", ".join(".".join(d["loc"]) for d in details)
        return Response(
            content=error_body(422, "invalid_parameter", f"invalid parameter: {where}", details),
            status_code=422,
            media_type="application/json",
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else _CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, None, message, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error: %s", exc)
        return error_response(500, "internal_error", "internal server error")
