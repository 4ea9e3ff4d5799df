"""Incremental cursors with a lag window, kept in dlt resource state.

Why not ``dlt.sources.incremental``: with ``lag`` it re-loads the whole window on every run (so a run
with no changes still rewrites rows), and without it a late commit (a record committed with an
``updated_at`` a few seconds in the past) is dropped silently. This window does both right:

* the request asks for ``updated_since = last_value - lag`` so late commits are re-read;
* records whose exact (key, cursor) version was already loaded in that window are filtered out, so
  an unchanged source loads nothing; so are records below the bound (an API that ignores or lacks the
  parameter, ``since_param: null``, is filtered here instead);
* records newer than the run's start (``cutoff``) are left for the next run, which keeps a walk
  over a busy source finite and never loads two versions of one record in one run. What was left is
  still reported (``deferred_ids``): the ids and cursor of each such record, which the loader writes to
  ``raw_<service>.<endpoint>__deferred`` so dbt knows which raw rows are behind the source
  (docs/consistency.md).

The cursor may be a timestamp (ISO 8601 in any offset), epoch seconds or milliseconds, an integer or
a string (``cursor_type``). Every value is compared through one *ordinal* column: epoch microseconds
(int64) for the three time types, the integer itself, or the string (lexicographic order). The lag is
seconds for a time cursor and cursor units for an integer one; a string has no distance, so its
window is the last value itself (re-read inclusively, deduplicated by version). The cutoff only
applies to time cursors: an integer or string says nothing about when a record was committed.

The state lives in dlt's resource state, which travels inside the load package: it only advances
when the package commits, so a failed or killed run re-reads the same window next time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from extract.errors import ExtractError
from extract.spec import TIME_CURSORS


def _to_dt(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def iso(dt: datetime) -> str:
    """The services' timestamp format: microseconds and a ``Z``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _us(dt: datetime) -> int:
    return int(dt.timestamp()) * 1_000_000 + dt.microsecond


def _from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


_EPOCH_SCALE = {"epoch_s": 1_000_000, "epoch_ms": 1_000}  # microseconds per unit


def ordinal(column: pa.Array | pa.ChunkedArray, cursor_type: str) -> pa.Array:
    """The comparable form of a cursor column: epoch microseconds (int64) for the time types, the
    integer itself, or the string."""
    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if cursor_type == "timestamp":
        return col.cast(pa.int64())
    if cursor_type in _EPOCH_SCALE:
        scale = _EPOCH_SCALE[cursor_type]
        if pa.types.is_integer(col.type) or pa.types.is_null(col.type):
            return pc.multiply(col.cast(pa.int64()), scale)
        return pc.round(pc.multiply(col.cast(pa.float64()), float(scale))).cast(pa.int64())
    if cursor_type == "integer":
        return col.cast(pa.int64())
    return col.cast(pa.string())


def format_bound(bound: Any, cursor_type: str, since_format: str) -> Any:
    """The lower bound as the API's parameter wants it. A time bound is floored to the format's
    precision (the request is inclusive, so flooring only re-reads a little more)."""
    if cursor_type not in TIME_CURSORS:
        return bound  # integer or string: the value itself (``raw``, the only format allowed)
    fmt = since_format
    if fmt == "raw":  # as the records carry it
        fmt = {"timestamp": "iso8601"}.get(cursor_type, cursor_type)
    dt = _from_us(bound)
    if fmt == "iso8601":
        return iso(dt)
    if fmt == "iso8601_seconds":
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    if fmt == "date":
        return dt.strftime("%Y-%m-%d")
    if fmt in _EPOCH_SCALE:
        return bound // _EPOCH_SCALE[fmt]
    raise ValueError(f"unknown since_format {since_format!r}")


def key_strings(table: pa.Table, keys: tuple[str, ...], idx: list[int] | pa.Array) -> list[str]:
    """The state's name of each key at rows ``idx``: the value as text for a one-field key (what older
    states hold), a JSON list of the parts for a composite key."""
    if len(idx) == 0:
        return []
    if len(keys) == 1:
        return [str(k) for k in table.column(keys[0]).take(idx).to_pylist()]
    parts = [table.column(k).take(idx).to_pylist() for k in keys]
    return [json.dumps(list(values), default=str) for values in zip(*parts, strict=True)]


class CursorStateError(ExtractError):
    """The saved cursor does not fit the endpoint's cursor type (the source file changed it)."""


class CursorWindow:
    """The cursor window of one resource: request bound, dedup filter, state update.

    ``keys`` is the key field or fields; ``lag`` is in cursor units (seconds for a time cursor). The
    state keeps ``last_value`` (ISO 8601 for a time cursor, else the value), ``seen`` (key -> ordinal
    of the versions loaded inside the window) and ``cursor_type``.
    """

    def __init__(
        self,
        state: dict[str, Any],
        keys: str | tuple[str, ...],
        cursor: str,
        lag: float,
        cutoff: datetime,
        cursor_type: str = "timestamp",
        since_format: str = "raw",
    ):
        self.state = state
        self.keys = (keys,) if isinstance(keys, str) else tuple(keys)
        self.key = self.keys[0]  # the first key field (named in deferred ids)
        self.cursor = cursor
        self.cursor_type = cursor_type
        self.since_format = since_format
        self.is_time = cursor_type in TIME_CURSORS
        if self.is_time:
            self.lag: Any = int(lag * 1_000_000)
        else:
            self.lag = int(lag) if cursor_type == "integer" else 0
        self.cutoff_us = _us(cutoff) if self.is_time else None
        saved = state.get("cursor_type", "timestamp")  # states written before there was a choice
        if state.get("last_value") is not None and saved != cursor_type:
            raise CursorStateError(
                f"cursor {cursor!r}: the saved position is a {saved} cursor but the source file now says "
                f"cursor_type {cursor_type}; run a full refresh of the service (python -m extract "
                "--full-refresh <service>) to start the new cursor from scratch"
            )
        self.last = self._load(state.get("last_value"))
        self.max_seen = self.last
        # versions loaded inside the window: key -> cursor ordinal
        self.seen: dict[str, Any] = {
            str(k): self._seen_value(v) for k, v in (state.get("seen") or {}).items()
        }
        self.skipped_known = 0
        self.deferred = 0
        self._deferred_rows: list[pa.Table] = []

    # -- state values -------------------------------------------------------------------------------
    def _load(self, value: Any) -> Any:
        if value is None or value == "":
            return None
        try:
            if self.is_time:
                return _us(_to_dt(str(value)))
            if self.cursor_type == "integer":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise TypeError(value)
                return value
            return str(value)
        except (TypeError, ValueError):
            raise CursorStateError(
                f"cursor {self.cursor!r}: the saved position is not a {self.cursor_type} value; run a full "
                "refresh of the service (python -m extract --full-refresh <service>)"
            ) from None

    def _seen_value(self, value: Any) -> Any:
        return str(value) if self.cursor_type == "string" else int(value)

    def _dump(self, value: Any) -> Any:
        return iso(_from_us(value)) if self.is_time else value

    # -- the window ---------------------------------------------------------------------------------
    def _bound(self) -> Any:
        """The inclusive lower bound of the window (None on the first run)."""
        if self.last is None:
            return None
        return self.last if self.cursor_type == "string" else self.last - self.lag

    def since(self) -> Any:
        """The lower bound to request, in the endpoint's ``since_format`` (None on the first run:
        load everything)."""
        bound = self._bound()
        return None if bound is None else format_bound(bound, self.cursor_type, self.since_format)

    def _ordinals(self, table: pa.Table) -> pa.Array:
        return ordinal(table.column(self.cursor), self.cursor_type)

    def filter(self, table: pa.Table) -> pa.Table:
        """Drop rows already loaded (same key and cursor), rows below the window and rows at/after the
        run's cutoff."""
        if table.num_rows == 0:
            return table
        cur = self._ordinals(table)
        if self.cutoff_us is not None:
            keep = pc.fill_null(pc.less(cur, self.cutoff_us), True)
            left = table.num_rows - pc.sum(keep.cast(pa.int64())).as_py()
            if left:
                self.deferred += left
                self._deferred_rows.append(table.filter(pc.invert(keep)))
        else:
            keep = pa.array([True] * table.num_rows, pa.bool_())
        bound = self._bound()
        if bound is not None:
            # below the window: loaded by an earlier run (the API did not filter them out)
            keep = pc.and_(keep, pc.fill_null(pc.greater_equal(cur, bound), True))
            if self.seen:
                in_window = pc.fill_null(pc.greater_equal(cur, bound), False)
                idx = pc.indices_nonzero(in_window).to_pylist()
                if idx:
                    keys = key_strings(table, self.keys, idx)
                    vals = cur.take(idx).to_pylist()
                    mask = keep.to_pylist()
                    for i, k, v in zip(idx, keys, vals, strict=True):
                        if mask[i] and self.seen.get(k) == v:
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
        names = [n for n in rows.column_names if n in (*self.keys, self.cursor) or n.endswith("_id")]
        return rows.select(names)

    def observe(self, table: pa.Table) -> None:
        """Remember what is being loaded: the max cursor and the versions inside the window."""
        if table.num_rows == 0:
            return
        cur = self._ordinals(table)
        top = pc.max(cur).as_py()
        if top is not None and (self.max_seen is None or top > self.max_seen):
            self.max_seen = top
        if self.max_seen is None:
            return
        floor = self._floor()
        in_window = pc.fill_null(pc.greater_equal(cur, floor), False)
        idx = pc.indices_nonzero(in_window)
        if len(idx):
            keys = key_strings(table, self.keys, idx)
            vals = cur.take(idx).to_pylist()
            self.seen.update(zip(keys, vals, strict=True))
        self._prune()

    def _floor(self) -> Any:
        return self.max_seen if self.cursor_type == "string" else self.max_seen - self.lag

    def _prune(self) -> None:
        if self.max_seen is None:
            return
        floor = self._floor()
        if any(v < floor for v in self.seen.values()):
            self.seen = {k: v for k, v in self.seen.items() if v >= floor}

    def commit(self) -> None:
        """Write the advanced window into the (package-bound) resource state."""
        self._prune()
        if self.max_seen is not None:
            self.state["last_value"] = self._dump(self.max_seen)
        self.state["seen"] = dict(self.seen)
        self.state["cursor_type"] = self.cursor_type


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
