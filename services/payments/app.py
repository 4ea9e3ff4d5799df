"""payments: API-key auth, JSON `links.next` absolute URLs, `updated_since`; payments and refunds."""

from __future__ import annotations

import urllib.parse
from datetime import datetime

import orjson
from fastapi import Depends, Query, Request
from fastapi.responses import Response

from services.common.app import create_app, json_response
from services.common.auth import api_key_auth
from services.common.db import ReadOnlyDB
from services.common.faults import FaultState
from services.common.paging import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    TOKEN_PATTERN,
    decode_key,
    encode_key,
    format_ts,
    keyset_page,
)
from services.common.schemas import responses
from services.common.settings import load_settings
from services.payments.models import PaymentsPage, RefundsPage

DESCRIPTION = """Payment attempts and refunds.

* **Auth**: header `X-API-Key` (missing → 401, wrong → 403).
* **Paging**: each page carries `links.next`, the absolute URL of the next page (null on the last one);
  follow it as given. It carries an opaque `after` keyset token; pages are ordered by (`updated_at`, id),
  so a record updated during a walk may come again later but none is skipped.
* **Incremental**: `updated_since` (inclusive, ISO 8601).
* Errors are JSON envelopes `{"error": {"code", "message", "status"}}`.
"""

SETTINGS = load_settings("payments", ("API_KEY",))
LIST_PATHS = frozenset({"/v1/payments", "/v1/refunds"})
app = create_app(SETTINGS, DESCRIPTION, ("payments", "refunds"), LIST_PATHS)
DB: ReadOnlyDB = app.state.db
FAULTS: FaultState = app.state.faults
AUTH = [Depends(api_key_auth(SETTINGS.secret("API_KEY")))]


def _list(
    request: Request, table: str, id_col: str, updated_since: datetime | None, after: str | None, limit: int
) -> Response:
    since = format_ts(updated_since) if updated_since is not None else None
    body, last = keyset_page(
        DB, table, "updated_at", id_col, since, decode_key(after, "after") if after else None, limit
    )
    if FAULTS.repeat_cursor and after is not None:
        nxt_after: str | None = after
    else:
        nxt_after = encode_key(*last) if last else None
    nxt = None
    if nxt_after is not None:
        params = {"after": nxt_after, "limit": limit}
        if since is not None:
            params["updated_since"] = since
        origin = FAULTS.link_origin(f"{request.url.scheme}://{request.url.netloc}")
        nxt = f"{origin}/v1/{table}?{urllib.parse.urlencode(params)}"
    return json_response(b'{"data":' + body + b',"links":' + orjson.dumps({"next": nxt}) + b"}")


SINCE = Query(None, description="inclusive lower bound on `updated_at`")
AFTER = Query(
    None, max_length=512, pattern=TOKEN_PATTERN, description="opaque keyset token (from `links.next`)"
)
LIMIT = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="page size (1-5000)")


@app.get(
    "/v1/payments",
    dependencies=AUTH,
    response_class=Response,
    responses=responses(PaymentsPage, 401, 403, 422),
    tags=["payments"],
)
def list_payments(
    request: Request, updated_since: datetime | None = SINCE, after: str | None = AFTER, limit: int = LIMIT
) -> Response:
    """Payment attempts ordered by (`updated_at`, `payment_id`); follow `links.next`."""
    return _list(request, "payments", "payment_id", updated_since, after, limit)


@app.get(
    "/v1/refunds",
    dependencies=AUTH,
    response_class=Response,
    responses=responses(RefundsPage, 401, 403, 422),
    tags=["refunds"],
)
def list_refunds(
    request: Request, updated_since: datetime | None = SINCE, after: str | None = AFTER, limit: int = LIMIT
) -> Response:
    """Refunds ordered by (`updated_at`, `refund_id`); follow `links.next`."""
    return _list(request, "refunds", "refund_id", updated_since, after, limit)
