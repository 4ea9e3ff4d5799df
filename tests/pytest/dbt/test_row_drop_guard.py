"""The row drop guard inside dbt (macros/tests/row_drop_guard.sql on every raw table): what it compares
with, what explains a drop, what moves its baseline.

Each case works on a private copy of the shared clean run's warehouse (tests/pytest/support/world.py), whose
`dbt build` was the first one (no baseline yet) and so recorded the counts every later build is
compared with. Raw rows are removed the way a source that lost them leaves raw (committed rows gone),
or the way the loader applies erasures (extract/deletes.py `apply_hard_deletes`: the key lands in
raw_customers.deletions and its rows leave customers and addresses).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from services.launcher import Fleet
from tests.pytest.support.dbt_world import DbtWorld, failures
from tests.pytest.support.world import Reference

BASELINE = "ops.row_count_baselines"
GUARD = "row_drop_guard"


def private_world(root: Path, reference: Reference, fleet: Fleet) -> DbtWorld:
    """A warehouse copied from the clean run (never changed by a test), with dbt's parse cache."""
    world = DbtWorld(root=root, fleet=fleet)
    shutil.copyfile(reference.workspace.warehouse, world.warehouse)
    world.target.mkdir(parents=True, exist_ok=True)
    cache = reference.workspace.root / "target" / "partial_parse.msgpack"
    if cache.exists():
        shutil.copyfile(cache, world.target / cache.name)
    return world


def baselines(world: DbtWorld) -> list[tuple[Any, ...]]:
    """Every recorded baseline row, oldest first (none before any build recorded one)."""
    con = world.con()
    try:
        if not con.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'ops' and table_name = 'row_count_baselines'"
        ).fetchone()[0]:
            return []
        return con.execute(
            f"select table_name, row_count, key_count, explained_count, accepted_drop, invocation_id "
            f"from {BASELINE} order by recorded_at, table_name"
        ).fetchall()
    finally:
        con.close()


def raw_counts(world: DbtWorld, table: str, key: str) -> tuple[int, int]:
    """Committed rows and distinct keys of a raw table, as the guard counts them."""
    schema = table.split(".")[0]
    con = world.con()
    try:
        rows, keys = con.execute(
            f"select count(*), count(distinct {key}) from {table} where _dlt_load_id in "
            f"(select load_id from {schema}._dlt_loads where status = 0)"
        ).fetchone()
    finally:
        con.close()
    return int(rows), int(keys)


def latest(world: DbtWorld, table: str) -> tuple[Any, ...]:
    rows = [r for r in baselines(world) if r[0] == table]
    assert rows, f"no baseline for {table}"
    return rows[-1]


def guarded_tables(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """raw table name → the guard test's arguments, from the manifest (a new source joins the check)."""
    out: dict[str, dict[str, Any]] = {}
    for node in manifest["nodes"].values():
        meta = node.get("test_metadata") or {}
        if node["resource_type"] == "test" and meta.get("name") == GUARD:
            source = manifest["sources"][node["depends_on"]["nodes"][0]]
            out[f"{source['schema']}.{source['identifier']}"] = meta["kwargs"]
    return out


def remove_rows(world: DbtWorld, table: str, key: str, where: str) -> list[int]:
    """Delete the committed rows of ``table`` matching ``where``; returns the keys removed."""
    con = world.con()
    try:
        keys = [r[0] for r in con.execute(f"select distinct {key} from {table} where {where}").fetchall()]
        con.execute(f"delete from {table} where {where}")
    finally:
        con.close()
    return keys


def test_first_build_records_what_it_accepted(
    reference: Reference, source_fleet: Fleet, tmp_path: Path
) -> None:
    """The clean run's build had no baseline to compare with, passed, and recorded one row per guarded
    raw table with the counts raw holds (committed rows only)."""
    world = private_world(tmp_path, reference, source_fleet)
    manifest = json.loads((reference.workspace.root / "target" / "manifest.json").read_text())
    guarded = guarded_tables(manifest)
    assert len(guarded) >= 10, guarded  # every raw data table of the five services
    rows = baselines(world)
    assert {r[0] for r in rows} == set(guarded)
    assert len(rows) == len(guarded), "one build, one row per table"
    build = json.loads((reference.workspace.run_dir / "dbt_last_build.json").read_text())
    assert {r[5] for r in rows} == {build["invocation_id"]}, "recorded by the clean run's own dbt build"
    con = world.con()
    try:
        for table, row_count, key_count, _, accepted, _ in rows:
            schema = table.split(".")[0]
            key = guarded[table]["key_column"]
            expected = con.execute(
                f"select count(*), count(distinct {key}) from {table} where _dlt_load_id in "
                f"(select load_id from {schema}._dlt_loads where status = 0)"
            ).fetchone()
            assert (row_count, key_count) == expected, table
            assert row_count > 0 and accepted is False, table
    finally:
        con.close()


def test_erasures_explain_a_drop_that_otherwise_stops_the_build(
    reference: Reference, source_fleet: Fleet, tmp_path: Path
) -> None:
    """A fifth of the customers gone: without erasures to explain it the guard fails (and names the
    table); once the same customers are in the erasure feed, as the loader leaves them, it passes."""
    world = private_world(tmp_path, reference, source_fleet)
    recorded = baselines(world)
    rows_before, keys_before = raw_counts(world, "raw_customers.customers", "customer_id")
    erased_before, _ = raw_counts(world, "raw_customers.deletions", "customer_id")
    gone = remove_rows(world, "raw_customers.customers", "customer_id", "customer_id % 5 = 0")
    remove_rows(world, "raw_customers.customers__addresses", "customer_id", "customer_id % 5 = 0")
    assert len(gone) > 0.15 * rows_before, "the drop must exceed the 10 % threshold"

    unexplained = world.dbt("build", "--select", "source:customers")
    assert unexplained["_exit_code"] == 1, unexplained["_stdout"][-3000:]
    failed = {r["unique_id"].split(".")[2] for r in unexplained["results"] if r["status"] == "fail"}
    assert any("customers_customers_" in f for f in failed), failed
    assert "row drop guard: raw_customers.customers has" in unexplained["_stdout"]
    assert "--accept-row-drop raw_customers.customers" in unexplained["_stdout"]
    assert baselines(world) == recorded, "a failed build records no baseline"

    con = world.con()
    try:
        (load_id,) = con.execute(
            "select max(load_id) from raw_customers._dlt_loads where status = 0"
        ).fetchone()
        con.executemany(
            "insert into raw_customers.deletions (customer_id, deleted_at, _dlt_load_id) "
            "values (?, now(), ?)",
            [[key, load_id] for key in gone],
        )
    finally:
        con.close()
    explained = world.dbt("build", "--select", "source:customers")
    assert explained["_exit_code"] == 0, failures(explained) or explained["_stdout"][-3000:]
    _, rows, keys, erased, accepted, _ = latest(world, "raw_customers.customers")
    assert (rows, keys) == (rows_before - len(gone), keys_before - len(gone))
    assert erased == erased_before + len(gone) and accepted is False


@pytest.mark.slow  # for make test's budget; the first-build and erasure cases stay in it
def test_stream_runs_record_nothing_accepted_drops_and_thresholds_move_the_baseline(
    reference: Reference, source_fleet: Fleet, tmp_path: Path
) -> None:
    """A third of the events gone. The stream's `dbt run -s tag:realtime` runs no guard and records
    nothing; `dbt build` stops on raw_events.events and records nothing; accepting the drop (var
    accept_row_drop) lets it through and makes its counts the baseline. Then a fifth more gone: a higher
    threshold (var row_drop_max_share) lets that through too."""
    world = private_world(tmp_path, reference, source_fleet)
    recorded = baselines(world)
    rows_before, keys_before = raw_counts(world, "raw_events.events", "event_id")
    gone = remove_rows(world, "raw_events.events", "event_id", "event_id % 3 = 0")

    stream = world.dbt("run", "--select", "tag:realtime")
    assert stream["_exit_code"] == 0, failures(stream) or stream["_stdout"][-3000:]
    assert baselines(world) == recorded, "a dbt run (no guard ran) must not record a baseline"

    guarded = world.dbt("build", "--select", "source:events")
    assert guarded["_exit_code"] == 1, guarded["_stdout"][-3000:]
    assert "row drop guard: raw_events.events has" in guarded["_stdout"]
    assert baselines(world) == recorded, "a failed build must not record a baseline"

    accepted = world.dbt(
        "build", "--select", "source:events", "--vars", "{accept_row_drop: [raw_events.events]}"
    )
    assert accepted["_exit_code"] == 0, failures(accepted) or accepted["_stdout"][-3000:]
    assert "raw_events.events has" in accepted["_stdout"] and "drop ACCEPTED" in accepted["_stdout"]
    _, rows, keys, _, was_accepted, _ = latest(world, "raw_events.events")
    assert (rows, keys) == (rows_before - len(gone), keys_before - len(gone)) and was_accepted is True

    more = remove_rows(world, "raw_events.events", "event_id", "event_id % 5 = 1")
    assert len(more) > 0.15 * rows, "the second drop must exceed the default threshold"
    relaxed = world.dbt("build", "--select", "source:events", "--vars", "{row_drop_max_share: 0.5}")
    assert relaxed["_exit_code"] == 0, failures(relaxed) or relaxed["_stdout"][-3000:]
    _, rows_now, keys_now, _, was_accepted, _ = latest(world, "raw_events.events")
    assert (rows_now, keys_now) == (rows - len(more), keys - len(more)) and was_accepted is False
