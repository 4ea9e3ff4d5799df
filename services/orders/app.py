"""orders: OAuth2 client credentials, page numbers with an RFC 8288 `Link` header, `updated_since`.

Next links carry an opaque `after` keyset token besides `page`, so a client that follows links pages by
keyset (fast, and safe under updates); a bare `page` still works via OFFSET for clients that compute
page numbers themselves (slow on deep pages, and an update mid-walk can shift rows under it).
"""

from __future__ import annotations

import urllib.parse
from datetime import datetime

import orjson
from fastapi import Depends, Path, Query, Request
from fastapi.responses import Response

from services.common.app import create_app, json_response
from services.common.auth import TokenStore, basic_credentials, oauth2_auth, same_secret
from services.common.db import ReadOnlyDB, as_bytes, join_docs
from services.common.errors import ApiError
from services.common.faults import FaultState
from services.common.paging import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    TOKEN_PATTERN,
    decode_key,
    encode_key,
    format_ts,
    keyset_page,
    since_param,
)
from services.common.schemas import responses
from services.common.settings import load_settings
from services.orders.models import Order, OrdersPage, TokenAnswer

DESCRIPTION = """Orders with their line items.

* **Auth**: OAuth2 client credentials. `POST /oauth/token` with a form body
  `grant_type=client_credentials&client_id=…&client_secret=…` (or HTTP Basic) returns a short-lived
  bearer token (`expires_in` seconds). Missing token → 401, unknown → 403, expired → 401 `token_expired`.
* **Paging**: page numbers; the next page is in the `Link` header (`rel="next"`, RFC 8288), absent on the
  last page. Follow it as given: it carries an opaque `after` keyset token so deep pages are fast and a
  walk under updates never skips an order. Ordered by (`updated_at`, `order_id`).
* **Incremental**: `updated_since` (inclusive, ISO 8601).
* Errors are JSON envelopes `{"error": {"code", "message", "status"}}`.
"""

SETTINGS = load_settings("orders", ("CLIENT_ID", "CLIENT_SECRET"))
LIST_PATHS = frozenset({"/v1/orders"})
app = create_app(SETTINGS, DESCRIPTION, ("orders",), LIST_PATHS)
DB: ReadOnlyDB = app.state.db
FAULTS: FaultState = app.state.faults
TOKENS = TokenStore(SETTINGS.token_ttl, FAULTS)
AUTH = [Depends(oauth2_auth(TOKENS))]

_FORM = {
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {"type": "string", "enum": ["client_credentials"]},
        "client_id": {"type": "string"},
        "client_secret": {"type": "string"},
    },
}


@app.post(
    "/oauth/token",
    response_class=Response,
    responses=responses(TokenAnswer, 401, 403, 422),
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": _FORM}}}
    },
    tags=["auth"],
)
async def issue_token(request: Request) -> Response:
    """Exchange client credentials for a bearer token (client credentials grant)."""
    form = urllib.parse.parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    grant = form.get("grant_type", [""])[0]
    if grant != "client_credentials":
        raise ApiError(422, "unsupported_grant_type", "grant_type must be client_credentials")
    creds = basic_credentials(request)
    if creds is None and "client_id" in form:
        creds = (form["client_id"][0], form.get("client_secret", [""])[0])
    if creds is None or not creds[0]:
        raise ApiError(401, "unauthorized", "missing client credentials")
    ok_id = same_secret(creds[0], SETTINGS.secret("CLIENT_ID"))
    ok_secret = same_secret(creds[1], SETTINGS.secret("CLIENT_SECRET"))
    if not (ok_id and ok_secret):
        raise ApiError(403, "forbidden", "wrong client credentials")
    token, ttl = TOKENS.issue()
    return json_response(orjson.dumps({"access_token": token, "token_type": "Bearer", "expires_in": ttl}))


SINCE = Query(None, description="inclusive lower bound on `updated_at`")
_LINK_HEADER = {
    "Link": {
        "description": 'RFC 8288 link to the next page, `<url>; rel="next"`; absent on the last page',
        "schema": {"type": "string"},
    }
}


@app.get(
    "/v1/orders",
    dependencies=AUTH,
    response_class=Response,
    responses=responses(OrdersPage, 401, 403, 422, headers=_LINK_HEADER),
    tags=["orders"],
)
def list_orders(
    request: Request,
    updated_since: datetime | None = SINCE,
    page: int = Query(1, ge=1, le=2**31, description="page number, from 1"),
    per_page: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="page size (1-5000)"),
    after: str | None = Query(
        None, max_length=512, pattern=TOKEN_PATTERN, description="opaque keyset token from a `Link` header"
    ),
) -> Response:
    """Orders ordered by (`updated_at`, `order_id`); follow the `Link` header for the next page."""
    since = since_param(updated_since)
    if after is not None:
        body, last = keyset_page(
            DB, "orders", "updated_at", "order_id", since, decode_key(after, "after"), per_page
        )
    elif page > 1:
        body, last = _offset_page(since, (page - 1) * per_page, per_page)
    else:
        body, last = keyset_page(DB, "orders", "updated_at", "order_id", since, None, per_page)
    headers: dict[str, str] = {}
    if FAULTS.repeat_cursor and (after is not None or page > 1):
        next_params = {"page": page, "per_page": per_page, "after": after}
    elif last is not None:
        next_params = {"page": page + 1, "per_page": per_page, "after": encode_key(*last)}
    else:
        next_params = None
    if next_params is not None:
        if updated_since is not None:
            next_params["updated_since"] = format_ts(updated_since)
        query = urllib.parse.urlencode({k: v for k, v in next_params.items() if v is not None})
        origin = FAULTS.link_origin(f"{request.url.scheme}://{request.url.netloc}")
        headers["Link"] = f'<{origin}/v1/orders?{query}>; rel="next"'
    tail = orjson.dumps({"page": page, "per_page": per_page})
    return json_response(b'{"data":' + body + b"," + tail[1:], headers)


def _offset_page(since: str | None, offset: int, limit: int) -> tuple[bytes, tuple[str, int] | None]:
    """The page-number fallback (no `after`): an OFFSET scan, documented as the slow path."""
    where, params = ("WHERE updated_at >= ?", [since]) if since else ("", [])
    rows = DB.all(
        f"SELECT updated_at, order_id, doc FROM orders {where} "
        "ORDER BY updated_at, order_id LIMIT ? OFFSET ?",
        [*params, limit + 1, offset],
    )
    last = (rows[limit - 1][0], rows[limit - 1][1]) if len(rows) > limit else None
    return join_docs([r[2] for r in rows[:limit]]), last


@app.get(
    "/v1/orders/{order_id}",
    dependencies=AUTH,
    response_class=Response,
    responses=responses(Order, 401, 403, 404, 422),
    tags=["orders"],
)
def get_order(order_id: int = Path(..., ge=0, le=2**62)) -> Response:
    """One order."""
    row = DB.one("SELECT doc FROM orders WHERE order_id = ?", (order_id,))
    if row is None:
        raise ApiError(404, "not_found", f"order {order_id} not found")
    return json_response(as_bytes(row[0]))
