"""Walk an endpoint page by page with the service's pagination style, safely.

Five styles (see docs/contracts.md): opaque ``cursor``, ``offset``/limit with ``total``, RFC 8288
``link_header``, JSON ``links.next`` (``json_link``) and ``id_cursor`` (``after_id``/``has_more``).
Each style only says how to build the next request from a page; ``walk`` adds the guards that apply
to all of them:

* every next request must differ from all earlier ones - a repeating cursor/link fails the run
  instead of paging forever;
* at most ``max_pages`` pages per walk;
* next-page URLs are checked against the service's origin before they are requested
  (``ServiceClient.check_origin``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

from requests.utils import parse_header_links

from extract.errors import UnsafePagination
from extract.http import ServiceClient
from extract.pages import Page

Request = tuple[str, dict[str, Any] | None]


def _next_link(page: Page) -> str | None:
    header = page.headers.get("Link") or page.headers.get("link")
    if not header:
        return None
    for link in parse_header_links(header):
        if "next" in (link.get("rel") or "").split():
            return link.get("url")
    return None


def next_request(style: str, current: Request, page: Page, base_url: str) -> Request | None:
    """The request for the page after ``page``, or None at the end."""
    url, params = current
    meta = page.meta
    if style == "cursor":
        token = meta.get("next_cursor")
        return None if token in (None, "") else (url, {**(params or {}), "cursor": token})
    if style == "offset":
        got = page.records.num_rows
        offset = int(meta.get("offset") or (params or {}).get("offset") or 0)
        total = meta.get("total")
        if got == 0 or total is None or offset + got >= int(total):
            return None
        return url, {**(params or {}), "offset": offset + got}
    if style == "link_header":
        link = _next_link(page)
        return None if not link else (urljoin(base_url + "/", link), None)
    if style == "json_link":
        links = meta.get("links") or {}
        link = links.get("next") if isinstance(links, dict) else None
        return None if not link else (urljoin(base_url + "/", link), None)
    if style == "id_cursor":
        if not meta.get("has_more"):
            return None
        return url, {**(params or {}), "after_id": meta.get("next_after_id")}
    raise ValueError(f"unknown paginator {style!r}")


def _fingerprint(req: Request) -> str:
    url, params = req
    text = url + "?" + "&".join(f"{k}={v}" for k, v in sorted((params or {}).items()))
    return hashlib.sha1(text.encode()).hexdigest()


def walk(client: ServiceClient, endpoint: str, style: str, first: Request, max_pages: int) -> Iterator[Page]:
    """Yield the pages of one walk, enforcing origin, loop and page-cap guards."""
    request: Request | None = first
    seen: set[str] = set()
    pages = 0
    while request is not None:
        fp = _fingerprint(request)
        if fp in seen:
            raise UnsafePagination(
                f"{client.service} {endpoint}: the service repeated a next-page cursor/link after {pages} "
                "page(s); stopping instead of looping forever"
            )
        seen.add(fp)
        if pages >= max_pages:
            raise UnsafePagination(
                f"{client.service} {endpoint}: more than {max_pages} pages (max_pages); stopping. "
                "Raise [sources.extract] max_pages if the data really is that large."
            )
        url, params = request
        client.check_origin(url, endpoint)
        page = client.fetch_page(endpoint, url, params)
        pages += 1
        yield page
        request = next_request(style, request, page, client.base_url)
        if request is not None:
            client.check_origin(request[0], endpoint)
