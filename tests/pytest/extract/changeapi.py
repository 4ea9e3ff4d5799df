"""A small REST API on 127.0.0.1 whose records change, for the incremental vocabulary (test_source_vocab.py).

Not one of the shop's services, and unlike ``plainapi.py`` its records have a history: ``update(key)``
moves a record's change counter past every other, so a test can prove what the next incremental run
loads. The counter is served as the cursor in the form a test picks (``cursor``): ISO 8601 in UTC or in
a +02:00 offset, epoch seconds, epoch milliseconds, an integer version or a sortable string; the lower
bound comes back in ``since_param`` in the form the test declared (``since_format``) and the server
filters on it like a real API would (inclusive). Records may have a composite key (``region``, ``id``)
and a child list (``lines``), carry deletion marks (``is_deleted``, ``deleted_at``), come with an error
envelope at any body path, and be guarded by OAuth2 client credentials whose token the server can
revoke. Pages: ``page``/``size`` page numbers, a bare JSON array (or ``{"data": [...]}`` when an
envelope path is set), ``X-Total-Count``. Every request is recorded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

BASE = datetime(2025, 6, 1, tzinfo=UTC)  # in the past: nothing is newer than a run's cutoff
PLUS_TWO = timezone(timedelta(hours=2))
SECRET = "s3cr3t-change-api"
Key = tuple[str, int]


def instant(tick: int, cursor: str) -> datetime:
    """When the change numbered ``tick`` happened: 1.5 s apart (2 s for whole epoch seconds)."""
    return BASE + (
        timedelta(seconds=2 * tick) if cursor == "epoch_s" else timedelta(milliseconds=1500 * tick)
    )


def cursor_value(tick: int, cursor: str) -> Any:
    """The record's cursor field for change ``tick`` in the served form."""
    at = instant(tick, cursor)
    if cursor == "iso":
        return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if cursor == "iso_offset":
        return at.astimezone(PLUS_TWO).isoformat(timespec="milliseconds")
    if cursor == "epoch_s":
        return int(at.timestamp())
    if cursor == "epoch_ms":
        return int(at.timestamp() * 1000)
    if cursor == "version":
        return tick
    return f"r{tick:06d}"  # string


def _since_key(value: str, cursor: str, since_format: str) -> Any:
    """The bound a request sent, comparable with ``_record_key``."""
    if cursor == "version":
        return int(value)
    if cursor == "string":
        return value
    if since_format == "raw":  # as the records carry the cursor
        since_format = cursor if cursor.startswith("epoch") else "iso8601"
    if since_format == "epoch_s":
        return datetime.fromtimestamp(int(value), UTC)
    if since_format == "epoch_ms":
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    if since_format == "date":
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _record_key(tick: int, cursor: str) -> Any:
    if cursor == "version":
        return tick
    if cursor == "string":
        return cursor_value(tick, cursor)
    return instant(tick, cursor)


@dataclass
class ChangeApi:
    """What the server serves; change the fields (or call ``update``/``delete``) between runs."""

    rows: int = 12
    cursor: str = "iso"  # iso | iso_offset | epoch_s | epoch_ms | version | string
    since_param: str = "since"
    since_format: str = "raw"  # how the loader was told to write the bound
    ignore_since: bool = False  # an API without the filter: every request gets every record
    composite: bool = False  # key (region, id): ids 1..rows in "eu" and again in "us"
    lines: bool = False  # a child list ``lines`` of two objects keyed by ``line_no``
    marks: bool = False  # ``is_deleted`` and ``deleted_at`` on every record
    envelope_path: str | None = None  # records at "data" and this body path carries ``envelope``
    envelope: Any = None
    auth: str = "none"  # none | oauth2
    revoke_after: int | None = None  # oauth2: the token stops working after this many data requests
    refuse_all: bool = False  # oauth2: every data request is refused (401 invalid_token)
    total_shift: int = 0  # added to X-Total-Count (a positive value: a total the walk cannot reach)
    ticks: dict[Key, int] = field(default_factory=dict)
    deleted: set[Key] = field(default_factory=set)
    erased: dict[Key, int] = field(default_factory=dict)  # served by /erased, gone from /items
    clock: int = 0
    tokens_issued: int = 0
    valid_token: str | None = None  # the one token the server accepts (None once revoked)
    hits: list[tuple[str, dict[str, list[str]], dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for key in self.keys():
            self.clock += 1
            self.ticks[key] = self.clock

    def keys(self) -> list[Key]:
        regions = ("eu", "us") if self.composite else ("eu",)
        return [(region, i) for region in regions for i in range(1, self.rows + 1)]

    # -- changes ------------------------------------------------------------------------------------
    def update(self, key: Key) -> None:
        """A new version of ``key``, newer than every other record."""
        with self.lock:
            self.clock += 1
            self.ticks[key] = self.clock

    def delete(self, key: Key) -> None:
        """Mark ``key`` deleted (a new version carrying the marks)."""
        self.deleted.add(key)
        self.update(key)

    def erase(self, key: Key) -> None:
        """Erase ``key``: gone from ``/items``, listed (with its own change number) by ``/erased``."""
        with self.lock:
            self.clock += 1
            self.erased[key] = self.clock

    def record(self, key: Key) -> dict[str, Any]:
        region, i = key
        tick = self.ticks[key]
        doc: dict[str, Any] = {"id": i, "name": f"n{i}-v{tick}", "changed": cursor_value(tick, self.cursor)}
        if self.composite:
            doc = {"region": region, **doc}
        if self.marks:
            gone = key in self.deleted
            doc["is_deleted"] = gone
            doc["deleted_at"] = instant(tick, "iso").strftime("%Y-%m-%dT%H:%M:%SZ") if gone else None
        if self.lines:
            doc["lines"] = [{"line_no": n, "qty": i * n} for n in (1, 2)]
            if self.composite:  # a child that repeats part of its parent's key, as many APIs do
                doc["lines"] = [{"region": region, **line} for line in doc["lines"]]
        return doc

    # -- HTTP ---------------------------------------------------------------------------------------
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

    def data_requests(self) -> int:
        return sum(1 for path, _, _ in self.hits if path != "/token")

    def token_requests(self) -> int:
        return sum(1 for path, _, _ in self.hits if path == "/token")

    def sent(self, name: str) -> list[str]:
        """Every value the loader sent for query parameter ``name``."""
        return [q[name][0] for path, q, _ in self.hits if path != "/token" and name in q]

    def answer(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = parse_qs(parts.query)
        with self.lock:
            self.hits.append((parts.path, query, dict(h.headers)))
        if h.command == "POST" and parts.path == "/token":
            h.rfile.read(int(h.headers.get("Content-Length") or 0))
            with self.lock:
                self.tokens_issued += 1
                token = self.valid_token = f"tok-{self.tokens_issued}"
            self._send(h, 200, {"access_token": token, "expires_in": 3600})
            return
        if self.auth == "oauth2" and not self._authorised(h):
            self._send(h, 401, {"error": {"code": "invalid_token", "message": "token revoked"}})
            return
        self._page(h, parts.path, query)

    def _authorised(self, h: BaseHTTPRequestHandler) -> bool:
        if self.refuse_all:
            return False
        with self.lock:
            if self.revoke_after is not None and self.data_requests() > self.revoke_after:
                self.revoke_after = None  # revoked once: the token issued next works
                self.valid_token = None
            return (
                self.valid_token is not None
                and h.headers.get("Authorization") == f"Bearer {self.valid_token}"
            )

    def _page(self, h: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]]) -> None:
        ticks = (
            self.erased
            if path == "/erased"
            else {k: t for k, t in self.ticks.items() if k not in self.erased}
        )
        keys = sorted(ticks, key=lambda k: (ticks[k], k))
        since = query.get(self.since_param, [None])[0]
        if since is not None and not self.ignore_since:
            bound = _since_key(since, self.cursor, self.since_format)
            keys = [k for k in keys if _record_key(ticks[k], self.cursor) >= bound]
        size = int(query.get("size", ["5"])[0])
        number = int(query.get("page", ["1"])[0])
        page = keys[(number - 1) * size : number * size]
        if path == "/erased":
            chunk = [
                {"region": r, "id": i, "changed": cursor_value(ticks[(r, i)], self.cursor)} for r, i in page
            ]
        else:
            chunk = [self.record(k) for k in page]
        headers = {"X-Total-Count": str(len(keys) + self.total_shift)}
        if self.envelope_path is None:
            self._send(h, 200, chunk, headers)
            return
        doc: dict[str, Any] = {"data": chunk}
        holder = doc
        *parents, last = self.envelope_path.split(".")
        for part in parents:
            holder = holder.setdefault(part, {})
        holder[last] = self.envelope
        self._send(h, 200, doc, headers)
