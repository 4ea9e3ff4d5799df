"""catalog: static bearer token, offset/limit paging with `total`, `updated_since`.

Offset paging is the documented exception to keyset paging: the products table is small (thousands of
rows), and ordering by `product_id` keeps every product in place when it is updated, so a walk never
skips one (a product updated into an `updated_since` window may shift later rows and be served twice).
"""

from __future__ import annotations

from datetime import datetime

import orjson
from fastapi import Depends, Path, Query
from fastapi.responses import Response

from services.catalog.models import CategoriesPage, Product, ProductsPage
from services.common.app import create_app, json_response
from services.common.auth import static_bearer_auth
from services.common.db import ReadOnlyDB, as_bytes, join_docs
from services.common.errors import ApiError
from services.common.paging import DEFAULT_LIMIT, MAX_LIMIT, since_param
from services.common.schemas import responses
from services.common.settings import load_settings

DESCRIPTION = """The product catalog and its categories.

* **Auth**: static bearer token, `Authorization: Bearer <token>` (missing → 401, wrong → 403).
* **Paging**: `offset`/`limit`; each page carries `total` (size of the filtered set), `offset`, `limit`.
  Walk until `offset + len(data) >= total`. Products are ordered by `product_id`, so an updated product
  keeps its position: a walk never skips one.
* **Incremental**: `updated_since` (inclusive, ISO 8601); `total` counts the filtered set.
* Errors are JSON envelopes `{"error": {"code", "message", "status"}}`.
"""

SETTINGS = load_settings("catalog", ("TOKEN",))
LIST_PATHS = frozenset({"/v1/products", "/v1/categories"})
app = create_app(SETTINGS, DESCRIPTION, ("products", "categories"), LIST_PATHS)
DB: ReadOnlyDB = app.state.db
AUTH = [Depends(static_bearer_auth(SETTINGS.secret("TOKEN")))]

LIMIT = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="page size (1-5000)")
SINCE = Query(None, description="inclusive lower bound on `updated_at`")
OFFSET = Query(0, ge=0, le=2**31, description="rows to skip")


def _page(docs: list, total: int, offset: int, limit: int) -> Response:
    tail = orjson.dumps({"total": total, "offset": offset, "limit": limit})
    return json_response(b'{"data":' + join_docs(docs) + b"," + tail[1:])


@app.get(
    "/v1/products",
    dependencies=AUTH,
    response_class=Response,
    responses=responses(ProductsPage, 401, 403, 422),
    tags=["products"],
)
def list_products(
    updated_since: datetime | None = SINCE,
    offset: int = OFFSET,
    limit: int = LIMIT,
) -> Response:
    """Products ordered by `product_id`, offset-paged."""
    since = since_param(updated_since)
    where, params = ("WHERE updated_at >= ?", [since]) if since else ("", [])
    with DB.snapshot() as con:  # one read snapshot for the count and the page
        total = con.execute(f"SELECT COUNT(*) FROM products {where}", params).fetchone()[0]
        rows = con.execute(
            f"SELECT doc FROM products {where} ORDER BY product_id LIMIT ? OFFSET ?", [*params, limit, offset]
        ).fetchall()
    return _page([r[0] for r in rows], total, offset, limit)


@app.get(
    "/v1/products/{product_id}",
    dependencies=AUTH,
    response_class=Response,
    responses=responses(Product, 401, 403, 404, 422),
    tags=["products"],
)
def get_product(product_id: int = Path(..., ge=0, le=2**62)) -> Response:
    """One product."""
    row = DB.one("SELECT doc FROM products WHERE product_id = ?", (product_id,))
    if row is None:
        raise ApiError(404, "not_found", f"product {product_id} not found")
    return json_response(as_bytes(row[0]))


@app.get(
    "/v1/categories",
    dependencies=AUTH,
    response_class=Response,
    responses=responses(CategoriesPage, 401, 403, 422),
    tags=["categories"],
)
def list_categories(offset: int = OFFSET, limit: int = LIMIT) -> Response:
    """Categories ordered by `category_id`, offset-paged."""
    total = DB.one("SELECT COUNT(*) FROM categories")[0]
    rows = DB.all("SELECT doc FROM categories ORDER BY category_id LIMIT ? OFFSET ?", (limit, offset))
    return _page([r[0] for r in rows], total, offset, limit)
