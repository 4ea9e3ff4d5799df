"""How to walk every page of every shop endpoint, shared by the benchmark peers.

Why one place: the limit client and the seed-style peer must walk exactly the same endpoints with the
same page size as the project's loaders, otherwise rows/s are not comparable. Credentials and URLs come
from the `SOURCES__<SERVICE>__*` variables the fleet writes to `fleet.env` (docs/contracts.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests


@dataclass(frozen=True)
class Endpoint:
    """One list endpoint: where it lives, how it pages, and which column carries money (if any)."""

    name: str  # stable label, also the table name the peers write
    service: str
    path: str
    style: str  # cursor | offset | link | links_next | after_id
    key: str
    money: str | None = None


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("customers", "customers", "/v1/customers", "cursor", "customer_id"),
    Endpoint("deletions", "customers", "/v1/deletions", "cursor", "customer_id"),
    Endpoint("products", "catalog", "/v1/products", "offset", "product_id", "price_minor"),
    Endpoint("categories", "catalog", "/v1/categories", "offset", "category_id"),
    Endpoint("orders", "orders", "/v1/orders", "link", "order_id", "total_minor"),
    Endpoint("payments", "payments", "/v1/payments", "links_next", "payment_id", "amount_minor"),
    Endpoint("refunds", "payments", "/v1/refunds", "links_next", "refund_id", "amount_minor"),
    Endpoint("events", "events", "/v1/events", "after_id", "event_id"),
)

Decode = Callable[[bytes], Any]


def select(names: list[str] | None) -> list[Endpoint]:
    """Endpoints whose name or service is in `names` (all when empty)."""
    if not names:
        return list(ENDPOINTS)
    wanted = set(names)
    return [e for e in ENDPOINTS if e.name in wanted or e.service in wanted]


def base_url(service: str, env: dict[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env[f"SOURCES__{service.upper()}__BASE_URL"].rstrip("/")


def auth_headers(
    session: requests.Session, service: str, env: dict[str, str] | None = None
) -> dict[str, str]:
    """Headers that authenticate against `service` (fetches an OAuth token for orders)."""
    env = os.environ if env is None else env
    prefix = f"SOURCES__{service.upper()}__"
    if service in ("customers", "payments"):
        return {"X-API-Key": env[prefix + "API_KEY"]}
    if service in ("catalog", "events"):
        return {"Authorization": f"Bearer {env[prefix + 'TOKEN']}"}
    if service == "orders":
        resp = session.post(
            base_url(service, env) + "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": env[prefix + "CLIENT_ID"],
                "client_secret": env[prefix + "CLIENT_SECRET"],
            },
            timeout=30,
        )
        resp.raise_for_status()
        return {"Authorization": f"Bearer {resp.json()['access_token']}"}
    raise ValueError(f"unknown service {service!r}")


def walk(
    session: requests.Session,
    endpoint: Endpoint,
    page_size: int,
    decode: Decode,
    env: dict[str, str] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Yield the `data` list of every page of `endpoint`, following its own pagination style.

    An OAuth token that expires mid-walk (401) is refreshed once per occurrence; any other HTTP error
    raises, because a peer that silently skips a page would look fast and be wrong.
    """
    root = base_url(endpoint.service, env)
    headers = auth_headers(session, endpoint.service, env)
    url: str | None = root + endpoint.path
    size_param = "per_page" if endpoint.style == "link" else "limit"
    params: dict[str, Any] | None = {size_param: page_size}
    offset = 0
    while url:
        resp = session.get(url, params=params, headers=headers, timeout=60)
        if resp.status_code == 401 and endpoint.service == "orders":
            headers = auth_headers(session, endpoint.service, env)
            continue
        resp.raise_for_status()
        body = decode(resp.content)
        rows = body["data"]
        yield rows
        url, params = _next_request(endpoint, resp, body, root, page_size, offset + len(rows))
        offset += len(rows)


def _next_request(
    endpoint: Endpoint,
    resp: requests.Response,
    body: dict[str, Any],
    root: str,
    page_size: int,
    seen: int,
) -> tuple[str | None, dict[str, Any] | None]:
    """The next page's URL and query parameters, or (None, None) at the end."""
    this = root + endpoint.path
    if endpoint.style == "cursor":
        cursor = body.get("next_cursor")
        return (this, {"limit": page_size, "cursor": cursor}) if cursor else (None, None)
    if endpoint.style == "offset":
        if not body["data"] or seen >= body["total"]:
            return None, None
        return this, {"limit": page_size, "offset": seen}
    if endpoint.style == "link":
        nxt = resp.links.get("next", {}).get("url")
        return (nxt, None) if nxt else (None, None)
    if endpoint.style == "links_next":
        nxt = (body.get("links") or {}).get("next")
        return (nxt, None) if nxt else (None, None)
    if endpoint.style == "after_id":
        if not body.get("has_more") or not body["data"]:
            return None, None
        return this, {"limit": page_size, "after_id": body["next_after_id"]}
    raise ValueError(f"unknown pagination style {endpoint.style!r}")
