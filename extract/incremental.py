"""Incremental cursors with a lag window, kept in dlt resource state.

Why not ``dlt.sources.incremental``: with ``lag`` it re-loads the whole window on every run (so a run
with no changes still rewrites rows), and without it a late commit (a record committed with an
``updated_at`` a few seconds in the past) is dropped silently. This window does both right:

* the request asks for ``updated_since = last_value - lag`` so late commits are re-read;
* records whose exact (key, cursor) version was already loaded in that window are filtered out, so
  an unchanged source loads nothing;
* records newer than the run's start (``cutoff``) are left for the next run, which keeps a walk
  over a busy source finite and never loads two versions of one record in one run. What was left is
  still reported (``deferred_ids``): the ids and cursor of each such record, which the loader writes to
  ``raw_<service>.<endpoint>__deferred`` so dbt knows which raw rows are behind the source
  (docs/consistency.md).

The state lives in dlt's resource state, which travels inside the load package: it only advances
when the package commits, so a failed or killed run re-reads the same window next time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


def _to_dt(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def iso(dt: datetime) -> str:
    """The services' timestamp format: microseconds and a ``Z``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _us(dt: datetime) -> int:
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def _from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


class CursorWindow:
    """The ``updated_at`` window of one resource: request bound, dedup filter, state update.

    Cursor values are compared as int64 epoch microseconds (the Arrow timestamps' storage), which is
    exact and avoids per-value datetime objects.
    """

    def __init__(self, state: dict[str, Any], key: str, cursor: str, lag_seconds: float, cutoff: datetime):
        self.state = state
        self.key = key
        self.cursor = cursor
        self.lag_us = int(lag_seconds * 1_000_000)
        self.cutoff_us = _us(cutoff)
        last = state.get("last_value")
        self.last_us: int | None = _us(_to_dt(last)) if last else None
        self.max_seen: int | None = self.last_us
        # versions loaded inside the window: key -> cursor value in epoch microseconds
        self.seen: dict[str, int] = {str(k): int(v) for k, v in (state.get("seen") or {}).items()}
        self.skipped_known = 0
        self.deferred = 0
        self._deferred_rows: list[pa.Table] = []

    def since(self) -> str | None:
        """The inclusive lower bound to request (None on the first run: load everything)."""
        return None if self.last_us is None else iso(_from_us(self.last_us - self.lag_us))

    def _micros(self, table: pa.Table) -> pa.Array:
        return table.column(self.cursor).combine_chunks().cast(pa.int64())

    def filter(self, table: pa.Table) -> pa.Table:
        """Drop rows already loaded (same key and cursor) and rows at/after the run's cutoff."""
        if table.num_rows == 0:
            return table
        cur = self._micros(table)
        keep = pc.fill_null(pc.less(cur, self.cutoff_us), True)
        left = table.num_rows - pc.sum(keep.cast(pa.int64())).as_py()
        if left:
            self.deferred += left
            self._deferred_rows.append(table.filter(pc.invert(keep)))
        if self.seen and self.last_us is not None:
            in_window = pc.fill_null(pc.greater_equal(cur, self.last_us - self.lag_us), False)
            idx = pc.indices_nonzero(in_window).to_pylist()
            if idx:
                keys = table.column(self.key).take(idx).to_pylist()
                vals = cur.take(idx).to_pylist()
                mask = keep.to_pylist()
                for i, k, v in zip(idx, keys, vals, strict=True):
                    if mask[i] and self.seen.get(str(k)) == v:
                        mask[i] = False
                        self.skipped_known += 1
                keep = pa.array(mask, pa.bool_())
        if pc.all(keep).as_py():  # the usual page: nothing to drop, and a filter would copy every column
            return table
        return table.filter(keep)

    def deferred_ids(self) -> pa.Table | None:
        """The records left for the next run: their key, their cursor and their other ``*_id`` columns
        (what they refer to), or None when nothing was left. Ids only: no field a person could be
        recognised by is copied."""
        if not self._deferred_rows:
            return None
        rows = pa.concat_tables(self._deferred_rows)
        names = [n for n in rows.column_names if n in (self.key, self.cursor) or n.endswith("_id")]
        return rows.select(names)

    def observe(self, table: pa.Table) -> None:
        """Remember what is being loaded: the max cursor and the versions inside the window."""
        if table.num_rows == 0:
            return
        cur = self._micros(table)
        top = pc.max(cur).as_py()
        if top is not None and (self.max_seen is None or top > self.max_seen):
            self.max_seen = top
        if self.max_seen is None:
            return
        in_window = pc.fill_null(pc.greater_equal(cur, self.max_seen - self.lag_us), False)
        idx = pc.indices_nonzero(in_window)
        if len(idx):
            keys = table.column(self.key).take(idx).to_pylist()
            vals = cur.take(idx).to_pylist()
            self.seen.update(zip((str(k) for k in keys), vals, strict=True))
        self._prune()

    def _prune(self) -> None:
        if self.max_seen is None:
            return
        floor = self.max_seen - self.lag_us
        if any(v < floor for v in self.seen.values()):
            self.seen = {k: v for k, v in self.seen.items() if v >= floor}

    def commit(self) -> None:
        """Write the advanced window into the (package-bound) resource state."""
        self._prune()
        if self.max_seen is not None:
            self.state["last_value"] = iso(_from_us(self.max_seen))
        self.state["seen"] = dict(self.seen)


class IdCursor:
    """The append-only ``event_id`` cursor: ``after_id`` for the request, max id after loading."""

    def __init__(self, state: dict[str, Any]):
        self.state = state
        self.last: int = int(state.get("last_id") or 0)

    def observe(self, table: pa.Table, key: str) -> pa.Table:
        """Keep only ids above the last loaded one (guards against a replayed page) and advance."""
        if table.num_rows == 0:
            return table
        ids = table.column(key)
        low = pc.min(ids).as_py()
        if low is None or low <= self.last:  # a replayed page: keep the new ids only (a filter copies)
            table = table.filter(pc.greater(ids, self.last))
        if table.num_rows:
            self.last = max(self.last, pc.max(table.column(key)).as_py())
        return table

    def commit(self) -> None:
        self.state["last_id"] = self.last
