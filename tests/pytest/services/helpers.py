"""Small clients for the five services used by the service tests (real HTTP, no mocks)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import orjson
import requests

from services.launcher import Fleet


def auth_headers(fleet: Fleet, service: str, session: requests.Session | None = None) -> dict[str, str]:
    """Valid credentials for one service (orders: a fresh OAuth2 token)."""
    env = fleet.env()
    if service in ("customers", "payments"):
        return {"X-API-Key": env[f"SOURCES__{service.upper()}__API_KEY"]}
    if service in ("catalog", "events"):
        return {"Authorization": f"Bearer {env[f'SOURCES__{service.upper()}__TOKEN']}"}
    return {"Authorization": f"Bearer {orders_token(fleet, session)}"}


def orders_token(fleet: Fleet, session: requests.Session | None = None) -> str:
    env = fleet.env()
    resp = (session or requests).post(
        f"{fleet.url('orders')}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": env["SOURCES__ORDERS__CLIENT_ID"],
            "client_secret": env["SOURCES__ORDERS__CLIENT_SECRET"],
        },
        timeout=10,
    )
    resp.raise_for_status()
    return resp.json()["access_token"]


def get(fleet: Fleet, service: str, path: str, **params: Any) -> requests.Response:
    return requests.get(
        f"{fleet.url(service)}{path}", headers=auth_headers(fleet, service), params=params, timeout=30
    )


def next_link(resp: requests.Response) -> str | None:
    """The rel="next" target of an RFC 8288 Link header."""
    match = re.search(r'<([^>]+)>;\s*rel="next"', resp.headers.get("link", ""))
    return match.group(1) if match else None


def db_rows(data_dir: Path, service: str, sql: str, params: tuple = ()) -> list[tuple]:
    """Ground truth straight from a service's SQLite file."""
    con = sqlite3.connect(f"file:{data_dir / f'{service}.sqlite'}?mode=ro", uri=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def loads(resp: requests.Response) -> Any:
    return orjson.loads(resp.content)


PAGE_PARAM = {"orders": "per_page"}
KEYS = {
    "/v1/customers": "customer_id",
    "/v1/deletions": "customer_id",
    "/v1/products": "product_id",
    "/v1/categories": "category_id",
    "/v1/orders": "order_id",
    "/v1/payments": "payment_id",
    "/v1/refunds": "refund_id",
    "/v1/events": "event_id",
}
SERVICE_OF = {
    "/v1/customers": "customers",
    "/v1/deletions": "customers",
    "/v1/products": "catalog",
    "/v1/categories": "catalog",
    "/v1/orders": "orders",
    "/v1/payments": "payments",
    "/v1/refunds": "payments",
    "/v1/events": "events",
}


def walk(
    fleet: Fleet,
    path: str,
    page_size: int,
    params: dict[str, Any] | None = None,
    on_page: Any = None,
    max_pages: int = 100_000,
) -> list[dict[str, Any]]:
    """Every record of a list endpoint, following that service's own paging convention.

    `on_page(page_number)` runs after each page (to change data mid-walk).
    """
    service = SERVICE_OF[path]
    session = requests.Session()
    session.headers.update(auth_headers(fleet, service, session))
    base = fleet.url(service) + path
    page_size = min(page_size, 5000)  # the contract's maximum, whatever the scale
    query: dict[str, Any] = {PAGE_PARAM.get(service, "limit"): page_size, **(params or {})}
    records: list[dict[str, Any]] = []
    url: str | None = base
    for page in range(1, max_pages + 1):
        resp = session.get(url, params=query, timeout=30)
        assert resp.status_code == 200, resp.text
        body = orjson.loads(resp.content)
        records.extend(body["data"])
        if on_page is not None:
            on_page(page)
        if service == "customers":
            if body["next_cursor"] is None:
                return records
            query = {**query, "cursor": body["next_cursor"]}
        elif service == "catalog":
            if body["offset"] + len(body["data"]) >= body["total"] or not body["data"]:
                return records
            query = {**query, "offset": body["offset"] + len(body["data"])}
        elif service == "orders":
            url = next_link(resp)
            if url is None:
                return records
            query = {}
        elif service == "payments":
            url = body["links"]["next"]
            if url is None:
                return records
            query = {}
        else:
            if not body["has_more"]:
                return records
            query = {**query, "after_id": body["next_after_id"]}
    raise AssertionError(f"{path}: more than {max_pages} pages")
