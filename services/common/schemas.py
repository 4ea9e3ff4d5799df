"""OpenAPI-only models: handlers return pre-rendered bytes, these models document what those bytes are.

They are declared through `responses=` so schemathesis can validate real responses against them while
the handlers skip pydantic serialisation entirely (the speed path).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    code: str
    message: str
    status: int
    details: list[dict[str, Any]] | None = None


class ErrorEnvelope(BaseModel):
    error: ErrorDetail


class Health(BaseModel):
    status: str
    service: str


_ERROR_TEXT = {
    401: "missing credentials (or, for OAuth2, an expired token: code `token_expired`)",
    403: "wrong credentials",
    404: "unknown id",
    422: "bad parameter",
    429: "rate limited (fault); see the Retry-After header",
    503: "injected server error (fault)",
}


def responses(model: type[BaseModel] | None, *statuses: int, headers: dict | None = None) -> dict:
    """The `responses=` mapping for an endpoint: its 200 model plus enveloped errors."""
    out: dict[int | str, dict] = {}
    if model is not None:
        ok: dict[str, Any] = {"model": model, "description": "OK"}
        if headers:
            ok["headers"] = headers
        out[200] = ok
    for status in (*statuses, 429, 503):
        out[status] = {"model": ErrorEnvelope, "description": _ERROR_TEXT.get(status, "error")}
    return out
