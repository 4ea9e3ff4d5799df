"""customers: API-key auth, opaque keyset cursor, `updated_since`, plus the erasure (hard delete) feed."""

from __future__ import annotations

from datetime import datetime

import orjson
from fastapi import Depends, Path, Query
from fastapi.responses import Response

from services.common.app import create_app, json_response
from services.common.auth import api_key_auth
from services.common.db import ReadOnlyDB, as_bytes
from services.common.errors import ApiError
from services.common.faults import FaultState
from services.common.paging import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    TOKEN_PATTERN,
    decode_key,
    encode_key,
    keyset_page,
    since_param,
)
from services.common.schemas import responses
from services.common.settings import load_settings
from services.customers.models import Customer, CustomersPage, DeletionsPage

DESCRIPTION = """Customers of the shop, with their addresses.

* **Auth**: header `X-API-Key` (missing → 401, wrong → 403).
* **Paging**: opaque cursor. Each page carries `next_cursor`; pass it back as `cursor` (with the same
  `limit`) until it is null. Pages are ordered by (`updated_at`, `customer_id`) and cut by keyset, so a
  customer updated during a walk moves to the end and may be served again, but none is ever skipped.
* **Incremental**: `updated_since` (inclusive, ISO 8601) on the first request.
* **Deletions**: soft-deleted customers keep being served with `deleted_at` set; erased (hard-deleted)
  customers disappear and are listed in `/v1/deletions`.
* Errors are JSON envelopes `{"error": {"code", "message", "status"}}`.
"""

SETTINGS = load_settings("customers", ("API_KEY",))
LIST_PATHS = frozenset({"/v1/customers", "/v1/deletions"})
app = create_app(SETTINGS, DESCRIPTION, ("customers", "deletions"), LIST_PATHS)
DB: ReadOnlyDB = app.state.db
FAULTS: FaultState = app.state.faults
AUTH = [Depends(api_key_auth(SETTINGS.secret("API_KEY")))]

LIMIT = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="page size (1-5000)")
SINCE = Query(None, description="inclusive lower bound on `updated_at`")
DELETED_SINCE = Query(None, description="inclusive lower bound on `deleted_at`")
CURSOR = Query(
    None, description="opaque `next_cursor` of the previous page", max_length=512, pattern=TOKEN_PATTERN
)


def _page(body: bytes, last: tuple[str, int] | None, cursor: str | None) -> Response:
    if FAULTS.repeat_cursor and cursor is not None:
        nxt: str | None = cursor
    else:
        nxt = encode_key(*last) if last else None
    return json_response(b'{"data":' + body + b',"next_cursor":' + orjson.dumps(nxt) + b"}")


@app.get(
    "/v1/customers",
    dependencies=AUTH,
    response_class=Response,
    responses=responses(CustomersPage, 401, 403, 422),
    tags=["customers"],
)
def list_customers(
    updated_since: datetime | None = SINCE,
    cursor: str | None = CURSOR,
    limit: int = LIMIT,
) -> Response:
    """Customers ordered by (`updated_at`, `customer_id`), keyset-paged with an opaque cursor."""
    after = decode_key(cursor, "cursor") if cursor else None
    body, last = keyset_page(
        DB, "customers", "updated_at", "customer_id", since_param(updated_since), after, limit
    )
    return _page(body, last, cursor)


@app.get(
    "/v1/customers/{customer_id}",
    dependencies=AUTH,
    response_class=Response,
    responses=responses(Customer, 401, 403, 404, 422),
    tags=["customers"],
)
def get_customer(customer_id: int = Path(..., ge=0, le=2**62)) -> Response:
    """One customer (soft-deleted ones too; erased ones are 404)."""
    row = DB.one("SELECT doc FROM customers WHERE customer_id = ?", (customer_id,))
    if row is None:
        raise ApiError(404, "not_found", f"customer {customer_id} not found")
    return json_response(as_bytes(row[0]))


@app.get(
    "/v1/deletions",
    dependencies=AUTH,
    response_class=Response,
    responses=responses(DeletionsPage, 401, 403, 422),
    tags=["deletions"],
)
def list_deletions(
    since: datetime | None = DELETED_SINCE,
    cursor: str | None = CURSOR,
    limit: int = LIMIT,
) -> Response:
    """Erased customers ordered by (`deleted_at`, `customer_id`): the hard-delete feed."""
    after = decode_key(cursor, "cursor") if cursor else None
    where, params = [], []
    if since is not None:
        where.append("deleted_at >= ?")
        params.append(since_param(since))
    if after is not None:
        where.append("(deleted_at, customer_id) > (?, ?)")
        params.extend(after)
    sql = "SELECT deleted_at, customer_id FROM deletions"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = DB.all(sql + " ORDER BY deleted_at, customer_id LIMIT ?", [*params, limit + 1])
    last = (rows[limit - 1][0], rows[limit - 1][1]) if len(rows) > limit else None
    body = orjson.dumps([{"customer_id": cid, "deleted_at": ts} for ts, cid in rows[:limit]])
    return _page(body, last, cursor)
