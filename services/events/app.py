"""events: static bearer token, append-only feed paged by `after_id`, with long-poll `wait`.

A long-poll checks the newest event id every 20 ms (a primary-key lookup, no page query) and answers as
soon as something newer than `after_id` is committed, so a streaming client sees a new event within
~100 ms without hammering the service.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from fastapi import Depends, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from services.common.app import create_app, json_response
from services.common.auth import static_bearer_auth
from services.common.db import ReadOnlyDB, join_docs
from services.common.faults import FaultState
from services.common.paging import DEFAULT_LIMIT, MAX_LIMIT
from services.common.schemas import responses
from services.common.settings import load_settings
from services.events.models import EventsPage

POLL_SECONDS = 0.02

DESCRIPTION = """Clickstream events, append-only.

* **Auth**: static bearer token, `Authorization: Bearer <token>` (missing → 401, wrong → 403).
* **Paging**: `after_id` cursor. Each page carries `next_after_id` (pass it back as `after_id`) and
  `has_more`. Event ids strictly increase, so a client that resumes from its last `next_after_id` reads
  every event exactly once.
* **Long-poll**: `wait` (0-30 s): when nothing is newer than `after_id`, the request waits up to `wait`
  seconds and answers within ~100 ms of a new event (or with an empty page when the wait ends).
* Errors are JSON envelopes `{"error": {"code", "message", "status"}}`.
"""

SETTINGS = load_settings("events", ("TOKEN",))
LIST_PATHS = frozenset({"/v1/events"})
app = create_app(SETTINGS, DESCRIPTION, ("events",), LIST_PATHS)
DB: ReadOnlyDB = app.state.db
FAULTS: FaultState = app.state.faults
AUTH = [Depends(static_bearer_auth(SETTINGS.secret("TOKEN")))]


def _newest() -> int:
    row = DB.one("SELECT MAX(event_id) FROM events")
    return int(row[0]) if row and row[0] is not None else 0


@app.get(
    "/v1/events",
    dependencies=AUTH,
    response_class=Response,
    responses=responses(EventsPage, 401, 403, 422),
    tags=["events"],
)
async def list_events(
    after_id: int | None = Query(
        None, ge=0, le=2**62, description="serve events with a larger id (default 0)"
    ),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="page size (1-5000)"),
    wait: float = Query(0, ge=0, le=30, description="long-poll seconds when nothing is newer (0-30)"),
) -> Response:
    """Events with `event_id > after_id`, in id order."""
    start = after_id or 0
    docs, last, more = await run_in_threadpool(_page, start, limit)
    if not docs and wait > 0:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            await asyncio.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            if _newest() > start:
                docs, last, more = await run_in_threadpool(_page, start, limit)
                break
    if FAULTS.repeat_cursor and after_id is not None:
        next_after_id, more = after_id, True
    else:
        next_after_id = last if last is not None else start
    tail = orjson.dumps({"next_after_id": next_after_id, "has_more": more})
    return json_response(b'{"data":' + join_docs(docs) + b"," + tail[1:])


def _page(after_id: int, limit: int) -> tuple[list, int | None, bool]:
    """Up to `limit` docs after `after_id`, the id of the last one, and whether more are waiting."""
    rows = DB.all(
        "SELECT event_id, doc FROM events WHERE event_id > ? ORDER BY event_id LIMIT ?", (after_id, limit + 1)
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return [r[1] for r in rows], (rows[-1][0] if rows else None), more
