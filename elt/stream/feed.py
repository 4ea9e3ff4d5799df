"""Follow the events feed in a background thread, so the next batch fills while the last one commits.

Why a thread: a micro-batch spends most of its time committing (dlt, dbt, publish) with the warehouse
lock held. Fetching in parallel means that when a commit ends, everything that arrived meanwhile is
already parsed and waiting, and a backlog drains at full page size. The buffer is bounded by the
batch cap (back-pressure): when the warehouse is slower than the feed, the thread stops polling
instead of growing without bound, and the events simply wait in the service.

Nothing here is durable: the position the thread polls from is only an in-memory read-ahead. What
counts is the committed position in the dlt state (see ``raw.py``); after a failed commit the runner
rewinds the feed to it (``rewind``), and pages polled before the rewind are discarded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from elt.stream.settings import MAX_POLL_SECONDS, PAGE_LIMIT
from extract import docdrift
from extract.config import service_config
from extract.errors import ExtractError
from extract.resources import make_client
from extract.shape import DriftTracker, conform
from extract.sources import SERVICES

log = logging.getLogger("elt.stream.feed")

EVENTS = SERVICES["events"]
ENDPOINT = EVENTS.endpoint("events")
KEY = ENDPOINT.primary_key
MAX_BACKOFF = 30.0


@dataclass
class Chunk:
    """Events of one page, conformed to the raw table's Arrow schema, and when they arrived."""

    table: pa.Table
    first_id: int
    last_id: int
    received_wall: float  # time.time() when the page was parsed


def make_chunk(table: pa.Table, received_wall: float) -> Chunk:
    ids = table.column(KEY)
    return Chunk(table, int(pc.min(ids).as_py()), int(pc.max(ids).as_py()), received_wall)


def check_document() -> None:
    """Compare the events service's OpenAPI document with its source file before the first poll, as
    every batch load does (extract/docdrift.py): a removed, renamed or retyped field raises
    ``DocumentDrift`` and the stream does not start. Pages are still checked one by one while it runs
    (``conform``), so drift that appears after the start stops the stream at the page that shows it."""
    docdrift.check_before_load(EVENTS, service_config(EVENTS.name, EVENTS.auth))


class EventFeed(threading.Thread):
    """Polls ``GET /v1/events?after_id&limit&wait`` and buffers conformed pages for the runner."""

    def __init__(self, start_after: int, cap: int, *, once: bool = False) -> None:
        super().__init__(name="stream-feed", daemon=True)
        cfg = service_config(EVENTS.name, EVENTS.auth)
        self.client = make_client(EVENTS, cfg)
        self.url = self.client.url(ENDPOINT.path)
        self.drift = DriftTracker()
        self.cap = cap
        self.once = once
        self.cond = threading.Condition()
        self.chunks: deque[Chunk] = deque()
        self.buffered = 0
        self.position = start_after  # after_id of the next poll
        self.generation = 0  # bumped by rewind(): pages polled before it are discarded
        self.newest_id = start_after  # the highest id the feed has seen
        self.caught_up = False  # the last poll said nothing more is waiting (has_more false)
        self.failures = 0  # consecutive failed polls
        self.polls = 0
        self._halt = threading.Event()

    # -- the thread ---------------------------------------------------------------------------------
    def stop(self) -> None:
        self._halt.set()
        with self.cond:
            self.cond.notify_all()

    def run(self) -> None:
        while not self._halt.is_set():
            with self.cond:
                while self.buffered >= self.cap and not self._halt.is_set():
                    self.cond.wait(0.5)  # back-pressure: the runner has not taken the buffer yet
                if self._halt.is_set():
                    return
                if self.once and self.caught_up:  # --once: nothing more to read ahead for
                    self.cond.wait(0.5)
                    continue
                after, generation = self.position, self.generation
                limit = min(PAGE_LIMIT, self.cap - self.buffered)
                wait = 0.0 if (self.once or not self.caught_up) else MAX_POLL_SECONDS
            try:
                table, next_after, has_more = self._poll(after, limit, wait)
            except ExtractError as exc:
                self.failures += 1
                delay = min(MAX_BACKOFF, 0.5 * 2 ** min(self.failures, 8))
                log.warning(
                    "events feed: poll after_id=%d failed (%d in a row): %s; backing off %.1fs",
                    after,
                    self.failures,
                    exc,
                    delay,
                )
                self._halt.wait(delay)
                continue
            if self.failures:
                log.info("events feed: recovered after %d failed poll(s)", self.failures)
            self.failures = 0
            with self.cond:
                if generation != self.generation:
                    continue  # a rewind happened while polling: this page is stale
                if table.num_rows:
                    chunk = make_chunk(table, time.time())
                    self.chunks.append(chunk)
                    self.buffered += table.num_rows
                    self.newest_id = max(self.newest_id, chunk.last_id)
                if next_after is not None and next_after > self.position:
                    self.position = next_after
                self.caught_up = not has_more
                self.cond.notify_all()

    def _poll(self, after: int, limit: int, wait: float) -> tuple[pa.Table, int | None, bool]:
        params = {"after_id": after, "limit": limit, "wait": wait}
        page = self.client.fetch_page(ENDPOINT.name, self.url, params)
        self.polls += 1
        table, _children = conform(page.records, ENDPOINT, f"raw_events.{ENDPOINT.name}", self.drift)
        if table.num_rows:
            table = table.filter(pc.greater(table.column(KEY), after))  # never trust a replayed page
        next_after = page.meta.get("next_after_id")
        if table.num_rows:
            next_after = max(int(next_after or 0), int(pc.max(table.column(KEY)).as_py()))
        return table, (int(next_after) if next_after is not None else None), bool(page.meta.get("has_more"))

    # -- the runner's side --------------------------------------------------------------------------
    def take(self, max_rows: int) -> list[Chunk]:
        """Remove and return buffered chunks holding at most ``max_rows`` events (a page may be split)."""
        out: list[Chunk] = []
        room = max_rows
        with self.cond:
            while self.chunks and room > 0:
                chunk = self.chunks.popleft()
                if chunk.table.num_rows > room:
                    head, tail = chunk.table.slice(0, room), chunk.table.slice(room)
                    self.chunks.appendleft(make_chunk(tail, chunk.received_wall))
                    chunk = make_chunk(head, chunk.received_wall)
                out.append(chunk)
                room -= chunk.table.num_rows
                self.buffered -= chunk.table.num_rows
            self.cond.notify_all()
        return out

    def wait_for_data(self, timeout: float) -> None:
        """Sleep until the feed buffers something new (or ``timeout`` passes)."""
        with self.cond:
            if not self.chunks:
                self.cond.wait(timeout)

    def rewind(self, after: int) -> None:
        """Drop the read-ahead and poll again from ``after`` (the committed position)."""
        with self.cond:
            self.chunks.clear()
            self.buffered = 0
            self.position = after
            self.generation += 1
            self.caught_up = False
            self.cond.notify_all()

    def skip_to(self, committed: int) -> None:
        """Another loader committed past our read-ahead: poll from there and drop what it covers."""
        with self.cond:
            if committed <= self.position:
                return
        self.rewind(committed)
