"""A small configurable REST API on 127.0.0.1 for the source-file vocabulary (test_source_files.py).

Not one of the shop's services: it speaks the conventions other teams' services use - a bare JSON
array or an envelope at any path, page numbers, offset/limit, cursors, Link headers, a next URL in
the body, a total in the body or in ``X-Total-Count`` - and checks each auth kind the way a real
server would (401 otherwise). Every request is recorded (path, query, headers) so a test can assert
what was sent, e.g. that ``auth: none`` sends no credential. Served through ``faultserver.fault_server``
(a real ``http.server`` on loopback).
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

SECRET = "s3cr3t-value-123"  # every credential of the tests; never expected in a message


def record(i: int) -> dict[str, Any]:
    """Record ``i``: an id, a timestamp that orders like the id, and a name."""
    return {"id": i, "updated_at": f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}.000000Z", "name": f"n{i}"}


@dataclass
class Api:
    """What the server serves and how; change the fields between requests to change its behaviour."""

    rows: int = 23
    records: str = "$"  # "$" (bare array) or a dotted path of the list in an envelope
    style: str = "page_number"  # none | cursor | offset | page_number | link_header | json_link | id_cursor
    auth: str = "none"  # none | api_key | api_key_query | bearer | basic | oauth2
    key_name: str = "X-Key"  # api_key header / query parameter name
    limit_param: str = "size"
    page_param: str = "p"
    first_page: int = 1
    total: str | None = None  # None | "header" (X-Total-Count) | a dotted body path
    total_pages_path: str | None = None
    total_shift: int = 0  # added to the reported total (a negative value: records added mid-walk)
    drop_next_after: int | None = None  # stop naming a next page after this many pages (a short walk)
    ignore_page: bool = False  # serve the first page whatever the page parameter says
    next_url: str | None = None  # json_link/link_header: this URL instead of the real next one
    scopes_seen: list[str] = field(default_factory=list)
    hits: list[tuple[str, dict[str, list[str]], dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- auth ---------------------------------------------------------------------------------------
    def _authorised(self, h: BaseHTTPRequestHandler, query: dict[str, list[str]]) -> bool:
        got = h.headers.get("Authorization", "")
        if self.auth == "none":
            return True
        if self.auth == "api_key":
            return h.headers.get(self.key_name) == SECRET
        if self.auth == "api_key_query":
            return query.get(self.key_name) == [SECRET]
        if self.auth == "bearer":
            return got == f"Bearer {SECRET}"
        if self.auth == "basic":
            return got == "Basic " + base64.b64encode(f"reader:{SECRET}".encode()).decode()
        if self.auth == "oauth2":
            return got == "Bearer issued-token"
        return False

    def _token(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        form = parse_qs(h.rfile.read(length).decode())
        if form.get("client_id") != ["reader"] or form.get("client_secret") != [SECRET]:
            self._send(h, 401, {"error": "invalid_client"})
            return
        self.scopes_seen.extend(form.get("scope", []))
        self._send(h, 200, {"access_token": "issued-token", "expires_in": 300})

    # -- pages --------------------------------------------------------------------------------------
    def _send(
        self, h: BaseHTTPRequestHandler, status: int, doc: Any, headers: dict[str, str] | None = None
    ) -> None:
        body = orjson.dumps(doc)
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(body)

    def answer(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = parse_qs(parts.query)
        with self.lock:
            self.hits.append((parts.path, query, dict(h.headers)))
        if h.command == "POST" and parts.path == "/token":
            self._token(h)
            return
        if not self._authorised(h, query):
            self._send(h, 401, {"error": {"code": "unauthorized", "message": "credentials required"}})
            return
        self._page(h, parts.path, query)

    def _page(self, h: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]]) -> None:
        def one(name: str, default: int) -> int:
            return int(query[name][0]) if name in query else default

        since = query.get("updated_since", [None])[0]
        rows = [record(i) for i in range(1, self.rows + 1)]
        if since:
            rows = [r for r in rows if r["updated_at"] >= since]
        size = one(self.limit_param, 10)
        style = self.style
        meta: dict[str, Any] = {}
        if style == "none":
            start = 0
            size = len(rows)
        elif style == "offset":
            start = one("offset", 0)
        elif style == "page_number":
            number = self.first_page if self.ignore_page else one(self.page_param, self.first_page)
            start = (number - self.first_page) * size
        elif style in ("cursor", "link_header", "json_link"):
            start = one("at", 0) if style != "cursor" else int(query.get("token", ["0"])[0] or 0)
        else:  # id_cursor
            after = one("after_id", 0)
            start = next((k for k, r in enumerate(rows) if r["id"] > after), len(rows))
        pages_done = start // max(1, size) + 1
        chunk = rows[start : start + size]
        if style in ("offset", "page_number") and self.drop_next_after and pages_done > self.drop_next_after:
            chunk = []  # a server that stops early: an empty page where records remain
        end = start + len(chunk)
        more = end < len(rows) and (self.drop_next_after is None or pages_done < self.drop_next_after)
        headers: dict[str, str] = {}
        nxt = f"{path}?at={end}&{self.limit_param}={size}"
        if style == "cursor" and more:
            meta["paging"] = {"token": str(end)}
        if style == "json_link":
            meta["next"] = (self.next_url or nxt) if more else None
        if style == "link_header" and more:
            headers["Link"] = f'<{self.next_url or nxt}>; rel="next"'
        if style == "id_cursor":
            meta.update(more=more, last=chunk[-1]["id"] if chunk else None)
        if self.total == "header":
            headers["X-Total-Count"] = str(len(rows) + self.total_shift)
        total = len(rows) + self.total_shift
        if self.total_pages_path:
            _put(meta, self.total_pages_path, -(-len(rows) // max(1, size)))
        if self.total and self.total != "header":
            _put(meta, self.total, total)
        if self.records == "$":
            self._send(h, 200, chunk, headers)
            return
        doc = dict(meta)
        _put(doc, self.records, chunk)
        self._send(h, 200, doc, headers)

    def data_requests(self) -> int:
        return sum(1 for path, _, _ in self.hits if path != "/token")


def _put(doc: dict[str, Any], path: str, value: Any) -> None:
    keys = path.split(".")
    for key in keys[:-1]:
        doc = doc.setdefault(key, {})
    doc[keys[-1]] = value
