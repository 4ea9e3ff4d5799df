"""The rules of ``python -m elt repair-snapshot`` (transform/repair.py) on the situations a damaged SCD2
snapshot can be in, each written as the rows dbt-core 1.11's snapshot merge leaves (timestamp
strategy: a version's ``dbt_valid_from`` is its ``updated_at``, an update closes the old version where
the new one starts, a hard-delete invalidation closes it at the build's time). The end-to-end case, a
real damaged snapshot mended and compared with an undamaged one, is
tests/pytest/faults/test_row_drop.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from transform.repair import RepairError, Version, parse_since, plan_repair, snapshot_spec

T0 = datetime(2026, 11, 1, 12, 0, 0)
BAD = datetime(2026, 12, 1, 20, 46, 21)  # the build that saw the source without its rows
SINCE = BAD - timedelta(minutes=1)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


class Rows:
    """Snapshot rows with increasing row ids, as dbt inserts them."""

    def __init__(self) -> None:
        self.rows: list[Version] = []

    def add(self, key: int, valid_from: datetime, valid_to: datetime | None, value: str) -> int:
        rowid = len(self.rows)
        self.rows.append(Version(rowid, key, valid_from, valid_to, (key, value)))
        return rowid


def test_a_reinserted_version_is_folded_into_the_one_closed_by_mistake() -> None:
    rows = Rows()
    closed = rows.add(1, at(0), BAD, "NL")  # invalidated by the bad build
    copy = rows.add(1, at(0), None, "NL")  # inserted again once the source was whole
    plan = plan_repair(rows.rows, present={1}, since=SINCE)
    assert plan.delete == [copy]
    assert plan.valid_to == {closed: None}
    assert (plan.reopened, plan.reclosed, plan.left_closed) == (1, 0, 0)
    assert plan.closures == {BAD: 1}


def test_a_reinsert_closed_by_a_later_update_hands_its_end_to_the_original() -> None:
    rows = Rows()
    closed = rows.add(1, at(0), BAD, "NL")
    copy = rows.add(1, at(0), at(800), "NL")  # re-inserted, then updated at hour 800
    rows.add(1, at(800), None, "DE")
    plan = plan_repair(rows.rows, present={1}, since=SINCE)
    assert plan.delete == [copy]
    assert plan.valid_to == {closed: at(800)}
    assert (plan.reopened, plan.reclosed) == (0, 1)


def test_closed_by_mistake_then_a_new_version_closes_where_that_one_starts() -> None:
    rows = Rows()
    closed = rows.add(1, at(0), BAD, "NL")
    rows.add(1, at(10), None, "DE")  # the repaired source already had the next version
    plan = plan_repair(rows.rows, present={1}, since=SINCE)
    assert plan.delete == []
    assert plan.valid_to == {closed: at(10)}


def test_not_yet_rebuilt_and_present_reopens() -> None:
    rows = Rows()
    closed = rows.add(1, at(0), BAD, "NL")
    plan = plan_repair(rows.rows, present={1}, since=SINCE)
    assert plan.valid_to == {closed: None} and plan.delete == []


def test_erased_or_still_missing_keys_stay_closed() -> None:
    rows = Rows()
    rows.add(2, at(0), BAD, "FR")  # not in the source now: erased, or the source is still broken
    plan = plan_repair(rows.rows, present=set(), since=SINCE)
    assert plan.changes == 0 and plan.left_closed == 1


def test_updates_and_closures_before_since_are_never_touched() -> None:
    rows = Rows()
    rows.add(3, at(0), at(5), "NL")  # closed by an update (the next version starts at hour 5)
    rows.add(3, at(5), None, "BE")
    rows.add(4, at(0), SINCE - timedelta(days=3), "IT")  # an erasure long before the bad build
    rows.add(5, at(0), BAD + timedelta(hours=1), "ES")  # an update after the bad build
    rows.add(5, BAD + timedelta(hours=1), None, "PT")
    plan = plan_repair(rows.rows, present={3, 4, 5}, since=SINCE)
    assert plan.changes == 0 and plan.closures == {}


def test_a_second_repair_changes_nothing() -> None:
    rows = Rows()
    rows.add(1, at(0), BAD, "NL")
    rows.add(1, at(0), None, "NL")
    plan = plan_repair(rows.rows, present={1}, since=SINCE)
    repaired = [
        Version(v.rowid, v.key, v.valid_from, plan.valid_to.get(v.rowid, v.valid_to), v.values)
        for v in rows.rows
        if v.rowid not in plan.delete
    ]
    assert plan_repair(repaired, present={1}, since=SINCE).changes == 0


def test_since_must_be_a_time() -> None:
    assert parse_since("2026-12-01T20:46:00") == datetime(2026, 12, 1, 20, 46)
    with pytest.raises(RepairError, match="not an ISO 8601 time"):
        parse_since("yesterday")


def test_only_snapshots_that_invalidate_hard_deletes_are_repaired() -> None:
    manifest = {
        "nodes": {
            "snapshot.shop.snap_product_prices": {
                "name": "snap_product_prices",
                "resource_type": "snapshot",
                "schema": "snapshots",
                "config": {"unique_key": "product_id", "hard_deletes": "ignore"},
                "depends_on": {"nodes": ["model.shop.stg_catalog__products"]},
            }
        }
    }
    with pytest.raises(RepairError, match=r"hard_deletes: ignore.*nothing to repair"):
        snapshot_spec("snap_product_prices", manifest)
    with pytest.raises(RepairError, match="no snapshot named 'snap_nope'"):
        snapshot_spec("snap_nope", manifest)
