"""Walk an endpoint page by page with its pagination style, safely.

Seven styles (the ``paginator`` of a source file, docs/sources.md): ``none`` (one request), opaque
``cursor``, ``offset``/limit, ``page_number``, RFC 8288 ``link_header``, a next URL in the body
(``json_link``) and ``id_cursor`` (``after_id``/``has_more``). Each style only says how to build the
next request from a page, reading the body paths and parameter names of the endpoint's ``Paging``;
``walk`` adds the guards that apply to all of them:

* every next request must differ from all earlier ones - a repeating cursor/link fails the run
  instead of paging forever; for ``offset`` and ``page_number`` a page that starts with the same
  record as the one before (a server that ignores the parameter) fails too;
* at most ``max_pages`` pages per walk;
* next-page URLs are checked against the service's origin before they are requested
  (``ServiceClient.check_origin``); the loopback names ``localhost``, ``127.0.0.1`` and ``::1`` count as
  one host (``loopback_alias``): a service configured as ``http://localhost:8000`` whose links say
  ``http://127.0.0.1:8000/...`` is followed, on the configured name. Only those names: scheme and port
  must still match, and any other host is refused before a socket opens;
* **no silent short walk**: when the API reports a total (``total_path`` in the body or
  ``total_header``), a walk that ends with fewer records fails (``ShortWalk``) - before the resource
  commits, so nothing of it loads and no cursor moves. More is fine (records added during the walk);
  the smallest total any page reported counts (records removed during the walk). A walk that ends
  on a full first page without a next page is reported as a warning naming the keys to check.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from requests.utils import parse_header_links

from extract.config import LOOPBACK
from extract.errors import ShortWalk, UnsafePagination
from extract.http import ServiceClient, origin
from extract.pages import Page
from extract.spec import Endpoint, Paging

log = logging.getLogger("extract.paginators")

Request = tuple[str, dict[str, Any] | None]

# the Paging keys each style reads: what a message tells the user to check
STYLE_KEYS: dict[str, tuple[str, ...]] = {
    "none": (),
    "cursor": ("cursor_path", "cursor_param"),
    "offset": ("offset_param", "limit_param", "total_path", "total_header"),
    "page_number": ("page_param", "first_page", "limit_param", "stop_on_short_page", "total_pages_path"),
    "link_header": ("limit_param",),
    "json_link": ("next_path",),
    "id_cursor": ("has_more_path", "next_id_path", "after_param"),
}


def at_path(doc: Any, path: str | None) -> Any:
    """The value at a dotted path of a parsed body (None when any part is absent)."""
    if not path:
        return None
    value = doc
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def header(page: Page, name: str) -> str | None:
    """A response header, by case-insensitive name."""
    lower = name.lower()
    return next((v for k, v in page.headers.items() if k.lower() == lower), None)


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def reported_total(page: Page, paging: Paging) -> int | None:
    """The total number of records the page says the walk holds (``total_header`` wins), if any."""
    if paging.total_header:
        return _integer(header(page, paging.total_header))
    return _integer(at_path(page.meta, paging.total_path))


def _next_link(page: Page) -> str | None:
    value = header(page, "Link")
    if not value:
        return None
    for link in parse_header_links(value):
        if "next" in (link.get("rel") or "").split():
            return link.get("url")
    return None


def first_request(ep: Endpoint, url: str, page_size: int | None, params: dict[str, Any]) -> Request:
    """The first page's request: the endpoint's parameters, the page size, ``params`` (the incremental
    position) and the style's start (offset 0, the first page number)."""
    p = ep.paging
    query: dict[str, Any] = dict(ep.params)
    if p.limit_param and page_size:
        query[p.limit_param] = page_size
    query.update(params)
    if ep.paginator == "offset":
        query[p.offset_param] = 0
    elif ep.paginator == "page_number":
        query[p.page_param] = p.first_page
    return url, query


def next_request(ep: Endpoint, current: Request, page: Page, base_url: str, walked: int) -> Request | None:
    """The request for the page after ``page`` (``walked`` records so far, this page included), or None
    at the end."""
    style, p = ep.paginator, ep.paging
    url, params = current
    params = params or {}
    meta = page.meta
    got = page.records.num_rows
    limit = _integer(params.get(p.limit_param)) if p.limit_param else None
    if style == "none":
        return None
    if style == "cursor":
        token = at_path(meta, p.cursor_path)
        return None if token in (None, "") else (url, {**params, p.cursor_param: token})
    if style == "offset":
        offset = _integer(params.get(p.offset_param)) or 0
        total = reported_total(page, p)
        if got == 0:
            return None
        if total is not None:
            if offset + got >= total:
                return None
        elif limit is not None and got < limit:  # no total: a short page is the last
            return None
        return url, {**params, p.offset_param: offset + got}
    if style == "page_number":
        number = _integer(params.get(p.page_param))
        number = p.first_page if number is None else number
        pages = _integer(at_path(meta, p.total_pages_path))
        total = reported_total(page, p)
        if got == 0 or (pages is not None and number - p.first_page + 1 >= pages):
            return None
        if total is not None and walked >= total:
            return None
        if p.stop_on_short_page and limit is not None and got < limit:
            return None
        return url, {**params, p.page_param: number + 1}
    if style == "link_header":
        link = _next_link(page)
        return None if not link else (urljoin(base_url + "/", link), None)
    if style == "json_link":
        link = at_path(meta, p.next_path)
        return None if not isinstance(link, str) or not link else (urljoin(base_url + "/", link), None)
    if style == "id_cursor":
        if not at_path(meta, p.has_more_path):
            return None
        return url, {**params, p.after_param: at_path(meta, p.next_id_path)}
    raise ValueError(f"unknown paginator {style!r}")


def loopback_alias(url: str, base_url: str) -> str:
    """``url`` on the base URL's host name when both name the loopback host by different names.

    Why: a service run on this machine often builds its links from its bind address (``127.0.0.1``)
    while the user configured ``localhost`` (or the reverse, or ``[::1]``); both reach the same
    socket, so refusing the link as foreign would stop every such walk after page one. The request
    goes to the *configured* name, the one the first page proved reachable. Any other difference
    (scheme, port, a non-loopback host) is left for ``check_origin`` to refuse."""
    got, own = origin(url), origin(base_url)
    if got == own or got[0] != own[0] or got[2] != own[2] or got[1] not in LOOPBACK or own[1] not in LOOPBACK:
        return url
    parts = urlsplit(url)
    host = own[1] if ":" not in own[1] else f"[{own[1]}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _fingerprint(req: Request) -> str:
    url, params = req
    text = url + "?" + "&".join(f"{k}={v}" for k, v in sorted((params or {}).items()))
    return hashlib.sha1(text.encode()).hexdigest()


def keys_to_check(ep: Endpoint) -> str:
    """``paginator.kind = 'offset', paginator.offset_param = 'offset', ...`` for messages."""
    names = list(STYLE_KEYS.get(ep.paginator, ()))
    # every style takes a total: when one is set it arms the short-walk check, so a message names it too
    names += [k for k in ("total_path", "total_header") if k not in names and getattr(ep.paging, k)]
    keys = [f"paginator.kind = {ep.paginator!r}"]
    keys += [f"paginator.{k} = {getattr(ep.paging, k)!r}" for k in names]
    return ", ".join(keys)


def walk(
    client: ServiceClient,
    ep: Endpoint,
    first: Request,
    max_pages: int,
    where: str | None = None,
    on_total: Callable[[int], None] | None = None,
) -> Iterator[Page]:
    """Yield the pages of one walk, enforcing origin, loop, page-cap and short-walk guards.

    ``where`` is the source file, named in messages (default ``sources/<service>.yml``); ``on_total``
    is told the total the API reports (the smallest so far) whenever a page reports one, so the run
    log has it even when the walk then fails."""
    where = where or f"sources/{client.service}.yml"
    endpoint = ep.name
    request: Request | None = first
    seen: set[str] = set()
    pages = walked = 0
    totals: list[int] = []
    previous_first: list[dict] | None = None
    limit = _integer((first[1] or {}).get(ep.paging.limit_param)) if ep.paging.limit_param else None
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
        page = client.fetch_page(endpoint, url, params, ep.records, ep.error_path)
        pages += 1
        got = page.records.num_rows
        walked += got
        if ep.paginator in ("offset", "page_number") and got:
            head = page.records.slice(0, 1).to_pylist()
            if head == previous_first:
                raise UnsafePagination(
                    f"{client.service} {endpoint}: page {pages} starts with the same record as page "
                    f"{pages - 1}: the service seems to ignore the paging parameter; check "
                    f"{keys_to_check(ep)} in {where}"
                )
            previous_first = head
        total = reported_total(page, ep.paging)
        if total is not None:
            totals.append(total)
            if on_total is not None:
                on_total(min(totals))
        elif pages == 1 and (ep.paging.total_header or ep.paging.total_path):
            log.warning(
                "%s %s: the first page reports no total at %s; the walk cannot be checked against one",
                client.service,
                endpoint,
                f"header {ep.paging.total_header}" if ep.paging.total_header else ep.paging.total_path,
            )
        yield page
        request = next_request(ep, request, page, client.base_url, walked)
        if request is not None:
            request = (loopback_alias(request[0], client.base_url), request[1])
            client.check_origin(request[0], endpoint)
    expected = min(totals) if totals else None
    if expected is not None and walked < expected:
        raise ShortWalk(
            f"{client.service} {endpoint}: the API reported {expected} records but the walk ended after "
            f"{walked} in {pages} page(s); nothing of this walk is loaded. Check {keys_to_check(ep)} "
            f"in {where}"
        )
    if pages == 1 and limit is not None and got >= limit and expected is None and ep.paginator != "none":
        log.warning(
            "%s %s: the first page was full (%d records = the page size) and named no next page: "
            "if the endpoint holds more, the walk stopped short; check %s in %s",
            client.service,
            endpoint,
            got,
            keys_to_check(ep),
            where,
        )
