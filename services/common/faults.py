"""Fault injection: the misbehaviours a real source system shows, switched on per service on demand.

The loaders must survive rate limits, 5xx, dropped connections, truncated or enveloped pages, expiring
tokens, hostile links, endless cursors and schema drift. Faults are set from `SHOP_FAULTS` at start or via
`PUT /admin/faults`; each one is deterministic (counters, and a seeded RNG for `error_ratio`), so a test
can predict exactly which request fails. Setting faults resets the counters.

Only data requests (paths under `/v1/`) are faulted; a page is a 200 answer of a list endpoint.
All data requests share one counter, so with two `*_every` faults the first in this order wins:
`error_burst`, `rate_limit_every`, `error_ratio`, `drop_every`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from services.common.errors import ApiError, error_body

log = logging.getLogger("services.faults")


def _int(low: int, high: float = float("inf")) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _number(low: float, high: float = float("inf")) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int | float) and not isinstance(v, bool) and low <= v <= high


def _text(v: Any) -> bool:
    return isinstance(v, str) and bool(v)


_SPEC: dict[str, Callable[[Any], bool]] = {
    "rate_limit_every": _int(1),
    "retry_after": _number(0),
    "error_ratio": _number(0, 1),
    "error_status": _int(500, 599),
    "error_burst": _int(0),
    "seed": _int(-(2**63), 2**63),
    "latency_ms": _number(0, 60_000),
    "drop_every": _int(1),
    "truncate_every": _int(1),
    "error_envelope_every": _int(1),
    "token_expire_after": _int(1),
    "foreign_next_link": lambda v: isinstance(v, str) and v.startswith(("http://", "https://")),
    "repeat_cursor": lambda v: isinstance(v, bool),
    "drift_add": _text,
    "drift_remove": _text,
    "drift_rename": lambda v: isinstance(v, dict) and all(_text(k) and _text(x) for k, x in v.items()),
}
DRIFT_VALUE = "drifted"


def validate_faults(faults: Any) -> dict[str, Any]:
    """Check a fault set against the contract table; unknown keys or bad values are a 422."""
    if not isinstance(faults, dict):
        raise ApiError(422, "invalid_faults", "faults must be a JSON object")
    problems = [f"unknown key {k!r}" for k in faults if k not in _SPEC]
    problems += [f"bad value for {k!r}: {v!r}" for k, v in faults.items() if k in _SPEC and not _SPEC[k](v)]
    if problems:
        raise ApiError(422, "invalid_faults", "; ".join(problems))
    return dict(faults)


class FaultState:
    """The active fault set of one service, its counters, and the per-path request statistics."""

    def __init__(self, faults: dict[str, Any] | None = None):
        self.stats: dict[str, Counter] = defaultdict(Counter)
        self.set(faults or {})

    def set(self, faults: dict[str, Any]) -> None:
        self.faults = validate_faults(faults)
        self.data_requests = 0
        self.pages = 0
        self.burst_left = int(self.faults.get("error_burst", 0))
        self.rng = random.Random(self.faults.get("seed", 0))
        if self.faults:
            log.warning("faults set: %s", sorted(self.faults))

    def clear(self) -> None:
        self.set({})

    def reset_stats(self) -> None:
        self.stats.clear()

    def record(self, path: str, status: int | str) -> None:
        self.stats[path][str(status)] += 1

    def stats_doc(self) -> dict[str, Any]:
        by_path = {p: dict(c) for p, c in sorted(self.stats.items())}
        return {
            "requests": sum(sum(c.values()) for c in self.stats.values()),
            "by_path": by_path,
            "data_requests": self.data_requests,
            "pages": self.pages,
            "faults": self.faults,
        }

    # --- used by handlers -------------------------------------------------------------------------
    @property
    def repeat_cursor(self) -> bool:
        return bool(self.faults.get("repeat_cursor"))

    def link_origin(self, own_origin: str) -> str:
        """The origin next-page links point at: our own, unless `foreign_next_link` says otherwise."""
        return str(self.faults.get("foreign_next_link", own_origin)).rstrip("/")

    @property
    def token_expire_after(self) -> int | None:
        value = self.faults.get("token_expire_after")
        return int(value) if value is not None else None

    # --- used by the middleware -------------------------------------------------------------------
    def before_request(self) -> tuple[str, int] | None:
        """Count a data request and decide its fate: None (serve it), ("status", code) or ("drop", 0)."""
        self.data_requests += 1
        n = self.data_requests
        f = self.faults
        status = int(f.get("error_status", 503))
        if self.burst_left > 0:
            self.burst_left -= 1
            return ("status", status)
        if "rate_limit_every" in f and n % f["rate_limit_every"] == 0:
            return ("status", 429)
        if "error_ratio" in f and self.rng.random() < f["error_ratio"]:
            return ("status", status)
        if "drop_every" in f and n % f["drop_every"] == 0:
            return ("drop", 0)
        return None

    @property
    def rewrites_bodies(self) -> bool:
        f = self.faults
        return any(
            k in f
            for k in ("truncate_every", "error_envelope_every", "drift_add", "drift_remove", "drift_rename")
        )

    def rewrite_body(self, body: bytes, is_page: bool) -> bytes:
        """Apply the body faults to one 200 data response (pages count towards the *_every faults)."""
        f = self.faults
        if any(k in f for k in ("drift_add", "drift_remove", "drift_rename")):
            body = self._drift(body, is_page)
        if is_page:
            self.pages += 1
            if "truncate_every" in f and self.pages % f["truncate_every"] == 0:
                return body[: len(body) // 2]
            if "error_envelope_every" in f and self.pages % f["error_envelope_every"] == 0:
                return error_body(503, "maintenance", "the service is under maintenance (fault)")
        return body

    def _drift(self, body: bytes, is_page: bool) -> bytes:
        doc = orjson.loads(body)
        records: Iterable = doc.get("data", []) if is_page else [doc]
        f = self.faults
        for rec in records:
            if not isinstance(rec, dict):
                continue
            if "drift_add" in f:
                rec[f["drift_add"]] = DRIFT_VALUE
            if "drift_remove" in f:
                rec.pop(f["drift_remove"], None)
            for old, new in f.get("drift_rename", {}).items():
                if old in rec:
                    rec[new] = rec.pop(old)
        return orjson.dumps(doc)


async def _drop_connection(receive: Callable) -> bool:
    """Close the client's connection without writing a byte (uvicorn's request cycle owns the transport)."""
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        return False
    transport.close()
    cycle.disconnected = True  # uvicorn then skips its own 500 answer
    await asyncio.sleep(0)
    return True


class FaultMiddleware:
    """Pure ASGI middleware (no per-request Request objects): counts, faults, and rewrites data answers."""

    def __init__(self, app: Callable, state: FaultState, list_paths: frozenset[str]):
        self.app = app
        self.state = state
        self.list_paths = list_paths

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        state = self.state
        if path.startswith("/admin"):
            await self.app(scope, receive, send)
            return
        if not path.startswith("/v1/"):
            await self._serve(scope, receive, send, path)
            return
        latency = state.faults.get("latency_ms")
        if latency:
            await asyncio.sleep(latency / 1000)
        verdict = state.before_request()
        if verdict is not None:
            kind, status = verdict
            if kind == "drop":
                state.record(path, "dropped")
                if await _drop_connection(receive):
                    return
                status = 503  # no transport to close (not uvicorn): fall back to an error
            await self._send_error(send, path, status)
            return
        if state.rewrites_bodies:
            await self._serve_rewritten(scope, receive, send, path)
        else:
            await self._serve(scope, receive, send, path)

    async def _serve(self, scope: dict, receive: Callable, send: Callable, path: str) -> None:
        async def send_counting(message: dict) -> None:
            if message["type"] == "http.response.start":
                self.state.record(path, message["status"])
            await send(message)

        await self.app(scope, receive, send_counting)

    async def _serve_rewritten(self, scope: dict, receive: Callable, send: Callable, path: str) -> None:
        start: dict = {}
        chunks: list[bytes] = []

        async def capture(message: dict) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        status = start.get("status", 500)
        self.state.record(path, status)
        body = b"".join(chunks)
        if status == 200:
            body = self.state.rewrite_body(body, path in self.list_paths)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _send_error(self, send: Callable, path: str, status: int) -> None:
        self.state.record(path, status)
        headers = [(b"content-type", b"application/json")]
        if status == 429:
            code, message = "rate_limited", "too many requests (fault)"
            retry_after = math.ceil(self.state.faults.get("retry_after", 1))  # the header takes whole seconds
            headers.append((b"retry-after", str(retry_after).encode()))
        else:
            code, message = "unavailable", "injected server error (fault)"
        body = error_body(status, code, message)
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
