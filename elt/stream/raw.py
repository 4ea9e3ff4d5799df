"""Commit a micro-batch into ``raw_events.events`` through the batch loader's own dlt pipeline.

Exactly once, and why this way: the stream and ``python -m extract`` share one position, the
``last_id`` in the resource state of pipeline ``extract_events`` (source ``events``, resource
``events``). dlt stores that state *inside the load package*, so it advances only when the package
with the rows commits, in the same destination transaction boundary as the rows. Every commit
(stream or batch) runs under the warehouse lock and filters its rows to ``event_id > last_id`` read
from that state at commit time, so the two can interleave in any order without loading an id twice
and without gaps (a batch that finds its head already loaded keeps only the tail).

A crash leaves either nothing (killed before or during extract: state not advanced) or a pending
package whose rows and state go in together when the next run finishes it first (``finish_pending``).
dlt alone finishes it at least once, not exactly once: resume.py closes the three kill -9 windows in
which it would load rows twice or keep a cursor behind its rows.

By default (``direct``) a batch is appended by ``rawdirect.py`` in one DuckDB transaction that writes
the rows, the advanced state and the ``_dlt_loads`` row exactly as a dlt load does (it says why);
dlt still finishes pending packages, and loads any batch the direct append declines (no committed
state yet, a column the table lacks). ``--raw-writer dlt`` loads every batch through dlt.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc

from elt.stream import rawdirect
from elt.stream.feed import ENDPOINT, EVENTS, KEY
from elt.stream.session import BatchConnection
from extract import resume
from extract.incremental import IdCursor
from extract.pipelines import connect_warehouse, make_pipeline
from extract.resources import SCHEMA_CONTRACT
from extract.statesync import align_with_warehouse

log = logging.getLogger("elt.stream.raw")


@dataclass
class LoadOutcome:
    """What one commit did: rows written, rows skipped as already loaded, positions, timing."""

    rows: int
    skipped: int
    committed_before: int
    committed_after: int
    load_id: str | None
    seconds: float
    direct: bool = False  # appended by rawdirect (not a dlt run)


def state_last_id(state: dict[str, Any]) -> int:
    """``last_id`` of the events resource in a pipeline state dict (0 before the first load)."""
    resources = state.get("sources", {}).get(EVENTS.name, {}).get("resources", {})
    return int(resources.get(ENDPOINT.name, {}).get("last_id") or 0)


def events_source(table: pa.Table) -> Any:
    """A one-resource source shaped exactly like the batch loader's events source (same names,
    hints and schema contract), yielding ``table``'s rows above the committed ``last_id``."""

    def rows() -> Any:
        cursor = IdCursor(dlt.current.resource_state())
        kept = cursor.observe(table, KEY)
        if kept.num_rows:
            yield kept
        cursor.commit()

    resource = dlt.resource(
        rows,
        name=ENDPOINT.name,
        table_name=ENDPOINT.name,
        write_disposition="append",
        primary_key=KEY,
        schema_contract=SCHEMA_CONTRACT,
    )

    @dlt.source(name=EVENTS.name, max_table_nesting=0, schema_contract=SCHEMA_CONTRACT)
    def source() -> Any:
        return [resource]

    return source()


class RawLoader:
    """The long-lived pipeline object (re-attached when another process changed its folder)."""

    def __init__(self, direct: bool = True) -> None:
        self.pipeline = make_pipeline(EVENTS.name)
        self.direct = direct
        self._synced = False
        self._seen: tuple[tuple[str, int], ...] | None = None
        self._position: int | None = None  # committed last_id as of our last commit (warehouse's)
        self._behind = False  # direct appends advanced the warehouse's state past the local copy

    def _folder_fingerprint(self) -> tuple[tuple[str, int], ...]:
        """Modification stamps of the pipeline folder's state and schema files."""
        root = Path(self.pipeline.working_dir)
        files = [root / "state.json", *sorted((root / "schemas").glob("*"))]
        return tuple((f.name, f.stat().st_mtime_ns) for f in files if f.exists())

    def _reattach_if_changed(self) -> None:
        """``python -m extract`` runs the same pipeline from another process between our commits; its
        schema may have evolved there, so drop our in-memory copy rather than write an older one back."""
        if self._seen is not None and self._folder_fingerprint() != self._seen:
            log.info("raw: pipeline folder changed by another loader since our last commit; re-attaching")
            self.pipeline = make_pipeline(EVENTS.name)
            self._seen = self._folder_fingerprint()

    def committed_id(self) -> int:
        """The committed position: ``last_id`` in the pipeline state (local copy of the package state),
        or, once direct appends moved the warehouse's past it, the position our last commit saw."""
        local = state_last_id(self.pipeline.state)
        return max(local, self._position) if self._position is not None else local

    def finish_pending(self) -> None:
        """Load packages a crashed run (ours or the batch loader's) left extracted/normalized.

        Called under the lock before every commit: dlt refuses to extract while packages are pending.
        On the first call it also restores the state from the warehouse when the local folder is new.
        """
        self._reattach_if_changed()
        if not self._synced:
            # a local state ahead of this warehouse (a swapped or restored warehouse file, a shared run
            # folder) would resume after ids this warehouse never got: drop it first (statesync.py)
            with self.pipeline.sql_client() as client:
                self.pipeline = align_with_warehouse(self.pipeline, client.native_connection)
            self.pipeline.sync_destination()
            self._synced = True
            self._behind = False
        # exactly once, wherever the kill was: dlt's own resume can load a job or a package twice and
        # leave the cursor behind the rows it loaded (resume.py)
        resume.finish_pending(self.pipeline)

    def commit(self, table: pa.Table, shared: BatchConnection | None = None) -> LoadOutcome:
        """Append ``table``'s new rows under the caller's warehouse lock; return what was written.

        ``shared``: the batch's connection for the direct append (closed before dlt opens the file)."""
        started = time.monotonic()
        shared = shared or BatchConnection(connect_warehouse)
        self._reattach_if_changed()
        if not self._synced or self.pipeline.has_pending_data:
            shared.close()  # dlt syncs or finishes a package with its own connection
        self.finish_pending()
        if self.direct:
            try:
                done = rawdirect.append(
                    shared.get(),
                    table,
                    dataset=self.pipeline.dataset_name,
                    pipeline_name=self.pipeline.pipeline_name,
                    source=EVENTS.name,
                    resource=ENDPOINT.name,
                    table_name=ENDPOINT.name,
                    key=KEY,
                )
            except rawdirect.NotDirect as exc:
                log.info("raw: loading this batch through dlt: %s", exc)
            else:
                if done.rows:
                    # write the appended rows out now, as closing would: the models then read a table
                    # whose every row group has its min/max again (measured: docs/stream.md)
                    shared.get().execute("checkpoint")
                skipped = table.num_rows - done.rows
                if skipped:
                    log.info(
                        "raw: %d event(s) up to id %d were already loaded; skipping them",
                        skipped,
                        done.committed_before,
                    )
                self._position = done.committed_after
                self._behind = self._behind or done.rows > 0
                self._seen = self._folder_fingerprint()
                return LoadOutcome(
                    done.rows,
                    skipped,
                    done.committed_before,
                    done.committed_after,
                    done.load_id,
                    time.monotonic() - started,
                    direct=True,
                )
        shared.close()  # dlt opens the file itself
        if self._behind:  # dlt's own sync ran once already: restore the warehouse's newer state now
            self.pipeline.sync_destination()
            self._behind = False
        before = self.committed_id()
        fresh = table.filter(pc.greater(table.column(KEY), before)) if table.num_rows else table
        skipped = table.num_rows - fresh.num_rows
        if skipped:
            log.info("raw: %d event(s) up to id %d were already loaded; skipping them", skipped, before)
        if fresh.num_rows == 0:
            self._seen = self._folder_fingerprint()
            return LoadOutcome(0, skipped, before, before, None, time.monotonic() - started)
        info = self.pipeline.run(events_source(fresh), loader_file_format="parquet")
        info.raise_on_failed_jobs()
        after = self.committed_id()
        counts = self.pipeline.last_trace.last_normalize_info.row_counts if self.pipeline.last_trace else {}
        rows = int(counts.get(ENDPOINT.name, 0))
        load_id = info.loads_ids[-1] if info.loads_ids else None
        self._position = after
        self._seen = self._folder_fingerprint()
        return LoadOutcome(rows, skipped, before, after, load_id, time.monotonic() - started)
