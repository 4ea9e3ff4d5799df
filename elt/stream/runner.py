"""The stream loop: collect a micro-batch from the feed, commit it under the lock, publish, repeat.

One batch = events buffered by the feed thread, closed when it holds ``batch_max_events`` events,
when ``batch_max_seconds`` have passed since its oldest event occurred (or arrived), or at the cap.
While a batch commits the feed keeps reading ahead, so after a slow commit the next batch takes
everything that piled up (up to the cap): batches grow with the backlog instead of the stream
falling further behind at a fixed size.

Commit (all under one hold of the warehouse lock): finish any pending dlt package, append the rows
above the committed ``last_id`` (``raw.py``), rebuild + publish the real-time marts (``marts.py``),
record the batch in ``ops``. A failure in the load rewinds the feed to the committed position; a
failure in dbt or publish keeps the (committed) events' timestamps so their latency is counted
when a later batch publishes them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from core.secrets import scrub
from elt.stream import opsrow
from elt.stream.feed import KEY, Chunk, EventFeed, check_document
from elt.stream.latency import LatencyStats, latencies_seconds, percentile
from elt.stream.lockwait import LockTimeout, batch_lock
from elt.stream.marts import RealtimeMarts
from elt.stream.raw import RawLoader
from elt.stream.session import BatchConnection
from elt.stream.settings import StreamSettings
from extract.pipelines import connect_warehouse

log = logging.getLogger("elt.stream")

OCCURRED_AT = "occurred_at"
IDLE_WAKE_SECONDS = 0.5
FAILURE_PAUSE_SECONDS = 2.0


@dataclass
class Collected:
    chunks: list[Chunk] = field(default_factory=list)
    rows: int = 0
    reason: str = ""

    def table(self) -> pa.Table:
        return pa.concat_tables([c.table for c in self.chunks], promote_options="default")


class StreamRunner:
    """Owns the feed thread, the dlt pipeline, the parsed dbt project and the latency statistics."""

    def __init__(self, cfg: StreamSettings) -> None:
        self.cfg = cfg
        self.stop_requested = threading.Event()
        self.abandon_requested = False
        self.stats = LatencyStats()
        self.loader: RawLoader | None = None
        self.marts: RealtimeMarts | None = None
        self.feed: EventFeed | None = None
        self.unpublished: list[pa.Array] = []  # occurred_at of committed events not yet published
        self.batch_no = 0
        self.committed = 0
        self.export_version: str | None = None
        self.started_at = datetime.now(UTC)

    # -- lifecycle ----------------------------------------------------------------------------------
    def request_stop(self, signum: int | None = None, _frame: Any = None) -> None:
        """Signal handler: the first signal finishes the batch in flight, a second one stops waiting
        for the lock (nothing is lost either way: uncommitted events stay in the service)."""
        if self.stop_requested.is_set():
            self.abandon_requested = True
        self.stop_requested.set()
        if self.feed is not None:
            self.feed.stop()

    def start(self) -> None:
        """Parse dbt, attach the pipeline under the lock, and start the feed from the position."""
        check_document()  # before the lock and dbt's parse: a drifted source fails at once
        if self.cfg.marts:
            self.marts = RealtimeMarts(self.cfg.dbt_command, direct=self.cfg.marts_sql == "direct")
        with batch_lock("elt.stream: start", self.cfg.lock_wait, lambda: self.abandon_requested):
            self.loader = RawLoader(direct=self.cfg.raw_writer == "direct")
            self.loader.finish_pending()
            self.committed = self.loader.committed_id()
            if self.marts is not None:
                self.marts.prepare()  # dbt once, then compiled SQL per batch: ready means ready
                self.marts.publish_current(self.cfg.exports_root)  # the first batch writes only its change
        position = self.committed
        if self.cfg.from_event_id is not None:
            position = self.cfg.from_event_id
            if position > self.committed:
                log.warning(
                    "--from-event-id %d is past the committed position %d: ids %d..%d will never be loaded",
                    position,
                    self.committed,
                    self.committed + 1,
                    position,
                )
            elif position < self.committed:
                log.info(
                    "--from-event-id %d: ids up to %d are already loaded and will be skipped",
                    position,
                    self.committed,
                )
        log.info(
            "stream: following the events feed after id %d (committed %d); batches close at %d events or "
            "%.2fs, cap %d; marts %s",
            position,
            self.committed,
            self.cfg.batch_max_events,
            self.cfg.batch_max_seconds,
            self.cfg.batch_cap,
            f"-> {self.cfg.exports_root}" if self.cfg.marts else "off",
        )
        self.feed = EventFeed(position, self.cfg.batch_cap, once=self.cfg.once)
        self.feed.start()
        self.write_stats("running")  # the file's appearance tells a driver the stream is ready

    def run(self) -> int:
        """Loop until stopped (or one batch with ``--once``); returns the exit code."""
        self.start()
        assert self.feed is not None
        try:
            while True:
                collected = self.collect()
                if collected.rows:
                    self.commit(collected)
                if self.cfg.once or self.stop_requested.is_set():
                    break
        finally:
            self.feed.stop()
            self.feed.join(timeout=5)
            self.write_stats("stopped")
        summary = self.stats.summary()
        log.info(
            "stream stopped: %d batches (%d failed), %d events; latency p50 %s s, p95 %s s, max %s s -> %s",
            summary["batches"],
            summary["failed_batches"],
            summary["events"],
            summary["latency_p50_s"],
            summary["latency_p95_s"],
            summary["latency_max_s"],
            self.cfg.stats_path,
        )
        print(
            f"stream: {summary['batches']} batches, {summary['events']} events; latency "
            f"p50 {summary['latency_p50_s']} s, p95 {summary['latency_p95_s']} s, "
            f"max {summary['latency_max_s']} s (stats in {self.cfg.stats_path})",
            flush=True,
        )
        return 0

    # -- collecting ---------------------------------------------------------------------------------
    def collect(self) -> Collected:
        """Take buffered events until the batch closes (size, time, cap, caught up with --once, stop)."""
        assert self.feed is not None
        out = Collected()
        deadline: float | None = None
        cap, size, window = self.cfg.batch_cap, self.cfg.batch_max_events, self.cfg.batch_max_seconds
        while True:
            for chunk in self.feed.take(cap - out.rows):
                if deadline is None:
                    oldest = pc.min(chunk.table.column(OCCURRED_AT)).cast(pa.int64()).as_py() / 1e6
                    deadline = min(oldest, chunk.received_wall) + window
                out.chunks.append(chunk)
                out.rows += chunk.table.num_rows
            if self.stop_requested.is_set():
                out.reason = "stop"
                return out
            if out.rows >= cap:
                out.reason = "cap"
                return out
            if self.cfg.once:
                if self.feed.polls and self.feed.caught_up and self.feed.buffered == 0:
                    out.reason = "caught up"
                    return out
            elif out.rows >= size:
                out.reason = "size"
                return out
            elif deadline is not None and time.time() >= deadline:
                out.reason = "time"
                return out
            timeout = (
                IDLE_WAKE_SECONDS
                if deadline is None
                else max(0.0, min(IDLE_WAKE_SECONDS, deadline - time.time()))
            )
            self.feed.wait_for_data(timeout)

    # -- committing ---------------------------------------------------------------------------------
    def commit(self, collected: Collected) -> bool:
        """Load, rebuild and publish one batch under the lock; returns whether it fully succeeded."""
        assert self.loader is not None and self.feed is not None
        self.batch_no += 1
        table = collected.table()
        ids = table.column(KEY)
        started, cpu_started = time.monotonic(), time.process_time()
        row = opsrow.BatchRow(
            batch_no=self.batch_no,
            events=0,
            skipped=0,
            first_event_id=int(pc.min(ids).as_py()),
            last_event_id=int(pc.max(ids).as_py()),
            committed_id=self.committed,
            newest_seen_id=self.feed.newest_id,
            lag_events=0,
            close_reason=collected.reason,
            lock_wait_s=0.0,
            load_s=0.0,
            dbt_s=0.0,
            publish_s=0.0,
            total_s=0.0,
            latency_p50_s=None,
            latency_max_s=None,
            export_version=None,
            status="failed",
        )
        error: str | None = None
        try:
            with batch_lock(
                f"elt.stream batch {self.batch_no}", self.cfg.lock_wait, lambda: self.abandon_requested
            ) as waited:
                row.lock_wait_s = round(waited, 3)
                shared = BatchConnection(connect_warehouse)
                try:
                    run_id = opsrow.open_batch(self.batch_no, shared.get())
                except BaseException:
                    shared.close()
                    raise
                try:
                    error = self._commit_locked(table, row, shared)
                except Exception as exc:  # any failure: recorded, logged, the loop goes on
                    error = scrub(f"{type(exc).__name__}: {exc}")
                    log.exception("batch %d failed", self.batch_no)
                finally:
                    row.total_s = round(time.monotonic() - started, 3)
                    row.cpu_s = round(time.process_time() - cpu_started, 3)
                    row.committed_id = self.committed
                    row.newest_seen_id = self.feed.newest_id
                    row.lag_events = max(0, row.newest_seen_id - self.committed)
                    row.status = "failed" if error else "success"
                    try:  # on the batch's connection (still open after a direct run and publish)
                        opsrow.close_batch(run_id, row, error, shared.get())
                    except duckdb.Error:  # that connection failed: the row on a fresh one
                        shared.close()
                        opsrow.close_batch(run_id, row, error)
                    finally:
                        shared.close()
        except LockTimeout as exc:
            error = str(exc)
            log.warning(
                "batch %d not committed: %s; its events stay in the service for a later batch",
                self.batch_no,
                exc,
            )
        if error:
            self.stats.failed_batches += 1
            self._after_failure(row)
        self.stats.batches += 1
        self._log_batch(row, error)
        self.write_stats("running")
        return error is None

    def _commit_locked(self, table: pa.Table, row: opsrow.BatchRow, shared: BatchConnection) -> str | None:
        """The locked part: raw load, then marts, the direct steps on the batch's ``shared`` connection.
        Returns an error text for a marts failure."""
        assert self.loader is not None and self.feed is not None
        load = self.loader.commit(table, shared)
        self.committed = load.committed_after
        row.events, row.skipped, row.load_s = load.rows, load.skipped, round(load.seconds, 3)
        self.stats.events += load.rows
        self.feed.skip_to(self.committed)  # another loader may be ahead of our read-ahead
        if load.rows:
            loaded = table.filter(pc.greater(table.column(KEY), load.committed_before))
            self.unpublished.append(loaded.column(OCCURRED_AT).combine_chunks())
        if not self.unpublished:
            return None
        if self.marts is None:
            shared.close()
            visible = time.time()  # without marts, "visible" means committed in raw
        else:
            outcome = self.marts.refresh(self.cfg.exports_root, shared)
            visible = time.time()
            row.dbt_s = round(outcome.dbt_seconds, 3)
            row.publish_s = round(outcome.publish.seconds, 3)
            row.export_version = self.export_version = outcome.publish.version_id
        values: list[float] = []
        for arr in self.unpublished:
            values.extend(latencies_seconds(arr, visible))
        self.unpublished.clear()
        self.stats.add(values)
        if values:
            ordered = sorted(values)
            row.latency_p50_s = round(ordered[len(ordered) // 2], 3)
            row.latency_p95_s = round(percentile(ordered, 95) or 0.0, 3)
            row.latency_max_s = round(ordered[-1], 3)
        return None

    def _after_failure(self, row: opsrow.BatchRow) -> None:
        """Re-read from the committed position (the load may not have happened) after a short pause."""
        assert self.loader is not None and self.feed is not None
        try:
            self.committed = self.loader.committed_id()
        except (OSError, ValueError) as exc:
            log.warning("could not read the committed position: %s", exc)
        self.feed.rewind(self.committed)
        if not self.stop_requested.is_set():
            self.stop_requested.wait(FAILURE_PAUSE_SECONDS)

    def _log_batch(self, row: opsrow.BatchRow, error: str | None) -> None:
        log.info(
            "batch %d %s: %d events loaded (%d already loaded) ids %s-%s, closed by %s; lock wait %.2fs, "
            "load %.2fs, models %.2fs, publish %.2fs, total %.2fs (cpu %.2fs); latency p50 %s s max %s s; "
            "lag %d events (newest seen %d, committed %d)%s%s",
            row.batch_no,
            "FAILED" if error else "ok",
            row.events,
            row.skipped,
            row.first_event_id,
            row.last_event_id,
            row.close_reason,
            row.lock_wait_s,
            row.load_s,
            row.dbt_s,
            row.publish_s,
            row.total_s,
            row.cpu_s or 0.0,
            row.latency_p50_s,
            row.latency_max_s,
            row.lag_events,
            row.newest_seen_id,
            row.committed_id,
            f" -> {self.cfg.exports_root} version {row.export_version}" if row.export_version else "",
            f"; error: {error}" if error else "",
        )

    def write_stats(self, state: str) -> None:
        """The run's latency figures for the benchmark, rewritten after every batch and at exit."""
        cfg = self.cfg
        self.stats.write(
            cfg.stats_path,
            {
                "state": state,
                "pid": os.getpid(),
                "started_at": self.started_at.isoformat(),
                "updated_at": datetime.now(UTC).isoformat(),
                "latency_measured_to": "published realtime marts" if cfg.marts else "committed raw rows",
                "committed_event_id": self.committed,
                "export_version": self.export_version,
                "exports": str(cfg.exports_root),
                "batch_max_events": cfg.batch_max_events,
                "batch_max_seconds": cfg.batch_max_seconds,
                "batch_cap": cfg.batch_cap,
            },
        )
