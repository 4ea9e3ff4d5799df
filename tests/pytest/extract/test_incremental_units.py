"""Fast checks of the incremental windows without a server (extract/incremental.py): the request's
lower bound, the filter (already loaded, below the window, after the cutoff), what is left for the next
run, the state written, a saved cursor of another type, and the append-only id cursor. The same
windows through real loads: test_source_vocab.py and test_load.py."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest

from extract.incremental import CursorStateError, CursorWindow, IdCursor

CUTOFF = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def rows(*pairs: tuple[int, str]) -> pa.Table:
    """A page as shape.conform leaves it: the timestamp cursor is an Arrow timestamp (UTC)."""
    stamps = [datetime.fromisoformat(p[1].replace("Z", "+00:00")) for p in pairs]
    return pa.table(
        {"id": [p[0] for p in pairs], "updated_at": pa.array(stamps, pa.timestamp("us", tz="UTC"))}
    )


def window(state: dict[str, Any], lag: float = 10, **kw: Any) -> CursorWindow:
    return CursorWindow(state, "id", "updated_at", lag, CUTOFF, **kw)


def test_a_first_run_asks_for_everything_and_keeps_what_is_before_the_cutoff() -> None:
    w = window({})
    assert w.since() is None
    page = rows((1, "2026-12-01T10:00:00Z"), (2, "2026-12-01T12:00:00Z"), (3, "2026-12-01T13:00:00+01:00"))
    kept = w.filter(page)
    # id 2 is at the cutoff and id 3 is the same instant in another offset: both left for the next run
    assert kept.column("id").to_pylist() == [1]
    assert w.deferred == 2
    assert w.deferred_ids().column("id").to_pylist() == [2, 3]
    w.observe(kept)
    w.commit()
    assert w.state["last_value"] == "2026-12-01T10:00:00.000000Z"
    assert w.state["cursor_type"] == "timestamp" and list(w.state["seen"]) == ["1"]


def test_the_next_run_rereads_the_lag_and_skips_the_versions_it_loaded() -> None:
    state: dict[str, Any] = {}
    first = window(state)
    page = rows((1, "2026-12-01T10:00:00Z"), (2, "2026-12-01T10:00:05Z"))
    first.observe(first.filter(page))
    first.commit()

    again = window(state)
    assert again.since() == "2026-12-01T09:59:55.000000Z"  # the last value minus 10 s of lag
    late = rows(
        (2, "2026-12-01T10:00:05Z"),  # the same version: skipped
        (1, "2026-12-01T10:00:07Z"),  # a newer version of 1: kept
        (3, "2026-12-01T10:00:01Z"),  # a late commit inside the window: kept
        (4, "2026-12-01T09:00:00Z"),  # below the window (an API that ignored the bound): dropped
    )
    assert again.filter(late).column("id").to_pylist() == [1, 3]
    assert again.skipped_known == 1


def test_an_unchanged_page_is_returned_as_is() -> None:
    w = window({})
    page = rows((1, "2026-12-01T10:00:00Z"))
    assert w.filter(page) is page  # no filter, no copy


def test_integer_cursors_use_the_lag_in_units_and_no_cutoff() -> None:
    state: dict[str, Any] = {}
    w = window(state, lag=2, cursor_type="integer")
    page = pa.table({"id": [1, 2], "updated_at": [100, 10**12]})  # no cutoff for integers
    kept = w.filter(page)
    assert kept.num_rows == 2 and w.deferred == 0
    w.observe(kept)
    w.commit()
    assert state["last_value"] == 10**12
    assert window(state, lag=2, cursor_type="integer").since() == 10**12 - 2


def test_string_cursors_reread_the_last_value_only() -> None:
    state: dict[str, Any] = {}
    w = window(state, cursor_type="string")
    w.observe(w.filter(pa.table({"id": [1, 2], "updated_at": ["b", "c"]})))
    w.commit()
    again = window(state, cursor_type="string")
    assert again.since() == "c"
    kept = again.filter(pa.table({"id": [2, 3, 4], "updated_at": ["c", "c", "a"]}))
    assert kept.column("id").to_pylist() == [3]


def test_a_saved_cursor_of_another_type_asks_for_a_full_refresh() -> None:
    with pytest.raises(CursorStateError, match="full-refresh"):
        window({"last_value": "2026-12-01T10:00:00Z", "cursor_type": "timestamp"}, cursor_type="integer")
    with pytest.raises(CursorStateError, match="not a integer value"):
        window({"last_value": "ten", "cursor_type": "integer"}, cursor_type="integer")


def test_seen_versions_outside_the_window_are_forgotten() -> None:
    state: dict[str, Any] = {}
    w = window(state, lag=10)
    w.observe(w.filter(rows((1, "2026-12-01T10:00:00Z"))))
    w.observe(w.filter(rows((2, "2026-12-01T10:05:00Z"))))
    w.commit()
    assert set(state["seen"]) == {"2"}  # 1 is older than the newest value minus the lag


def test_the_id_cursor_keeps_new_ids_only_and_advances() -> None:
    state: dict[str, Any] = {"last_id": 5}
    cur = IdCursor(state)
    page = pa.table({"event_id": [4, 5, 6, 7]})  # a replayed page overlapping the last load
    assert cur.observe(page, "event_id").column("event_id").to_pylist() == [6, 7]
    fresh = pa.table({"event_id": [8, 9]})
    assert cur.observe(fresh, "event_id") is fresh
    cur.commit()
    assert state == {"last_id": 9}
