"""Snapshots and marts are protected from a source that lost its rows (issue 11), and a snapshot damaged
by a build that let such a drop through can be mended.

Before the row drop guard, a `raw_customers.customers` left with no rows (a failed full refresh) made the
next `make elt` close every customer's SCD2 version in `snap_customers` (hard deletes: invalidate)
before its tests failed; once raw was whole again every run failed `unique_snap_customers_dbt_scd_id`
for ever. Now the guard (a test on every raw table, macros/tests/row_drop_guard.sql) fails first and
`dbt build` skips everything built from the table; an accepted drop (`--accept-row-drop`) goes through,
and `python -m elt repair-snapshot` mends what such a build closed.

Every case starts from a copy of the shared clean run (warehouse, exports, dlt state, dbt target) and
ends equal to it (`assert_matches_clean`), the snapshot row for row, bookkeeping columns included.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from services.launcher import Fleet
from tests.pytest.support.fingerprints import assert_matches_clean, warehouse_print
from tests.pytest.support.workspace import Workspace, flow, make_workspace, run
from tests.pytest.support.world import PII_KEY, SCALE, Reference

SNAPSHOT = "snapshots.snap_customers"
CUSTOMERS = "raw_customers.customers"
ADDRESSES = "raw_customers.customers__addresses"


def copy_of_reference(reference: Reference, root: Path, fleet_env: dict[str, str]) -> Workspace:
    """A workspace holding the clean run's state, its sources the services of ``fleet_env``."""
    ws = make_workspace(root, fleet_env, PII_KEY)
    src = reference.workspace
    shutil.copyfile(src.warehouse, ws.warehouse)
    shutil.copytree(src.exports, ws.exports, symlinks=True)
    shutil.copytree(src.run_dir, ws.run_dir, dirs_exist_ok=True)
    shutil.copytree(src.root / "target", ws.root / "target", dirs_exist_ok=True)
    return ws


def use_sources(ws: Workspace, fleet: Fleet) -> None:
    """Point the workspace's loaders at ``fleet``."""
    ws.env.update({k: v for k, v in fleet.env().items() if k.startswith("SOURCES__")})


def query(ws: Workspace, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(ws.warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def snapshot_rows(ws: Workspace) -> list[tuple[Any, ...]]:
    """Every row of snap_customers, every column (dbt_scd_id, dbt_valid_from/to included)."""
    return query(ws, f"select * from {SNAPSHOT} order by all")


def baseline_rows(ws: Workspace) -> list[tuple[Any, ...]]:
    """The row drop guard's recorded baselines (none where no build recorded one)."""
    exists = "select count(*) from information_schema.tables where table_name = 'row_count_baselines'"
    if not query(ws, exists)[0][0]:
        return []
    return query(ws, "select * from ops.row_count_baselines order by all")


def committed_rows(ws: Workspace, table: str) -> int:
    schema = table.split(".")[0]
    return query(
        ws,
        f"select count(*) from {table} where _dlt_load_id in "
        f"(select load_id from {schema}._dlt_loads where status = 0)",
    )[0][0]


def node_statuses(ws: Workspace) -> dict[str, str]:
    """Node name → status of the workspace's last dbt invocation (target/run_results.json)."""
    results = json.loads((ws.root / "target" / "run_results.json").read_text())["results"]
    return {r["unique_id"].split(".")[2]: r["status"] for r in results}


def full_refresh_customers(ws: Workspace) -> None:
    out = run(ws, ["-m", "extract", "customers", "--full-refresh"])
    assert out.returncode == 0, out.describe()


# make test proves the guard stopping a build at dbt level (tests/pytest/dbt/test_row_drop_guard.py)
@pytest.mark.slow
def test_a_source_back_with_a_tenth_of_its_rows_stops_the_build_before_snapshots(
    reference: Reference,
    fleet_clean: Fleet,
    data_copy: Path,
    make_fleet: Callable[..., Fleet],
    tmp_path: Path,
) -> None:
    # a broken customers service that serves one customer in ten; a full refresh takes what it serves
    with sqlite3.connect(data_copy / "customers.sqlite") as db:
        db.execute("delete from customers where customer_id % 10 <> 0")
    broken = make_fleet(data_dir=data_copy, scale=SCALE)
    ws = copy_of_reference(reference, tmp_path / "ws", broken.env())
    snapshot, marts, version = (
        snapshot_rows(ws),
        warehouse_print(ws.warehouse, ("marts",)),
        ws.current_version(),
    )
    baseline = baseline_rows(ws)
    whole = committed_rows(ws, CUSTOMERS)
    full_refresh_customers(ws)
    assert committed_rows(ws, CUSTOMERS) <= whole * 0.15, "the refresh should have taken the tenth"

    out = flow(ws)

    assert out.returncode == 1, out.describe()
    assert "elt run FAILED at step 'dbt build'" in out.output, out.describe()
    assert snapshot_rows(ws) == snapshot, "the snapshot changed: versions closed by a source that lost rows"
    assert warehouse_print(ws.warehouse, ("marts",)) == marts, "a mart changed although the guard failed"
    assert ws.current_version() == version, "a failed build published"
    statuses = node_statuses(ws)
    assert statuses["snap_customers"] == "skipped" and statuses["dim_customers"] == "skipped", statuses
    assert f"row drop guard: {CUSTOMERS} has" in out.output, out.describe()
    assert f"--accept-row-drop {CUSTOMERS}" in out.output, out.describe()
    assert baseline_rows(ws) == baseline, "a failed build recorded a baseline"

    # the service is whole again: a full refresh brings every customer back and a plain run converges
    use_sources(ws, fleet_clean)
    full_refresh_customers(ws)
    out = flow(ws)
    assert out.returncode == 0, out.describe()
    assert snapshot_rows(ws) == snapshot_rows(reference.workspace)
    assert_matches_clean(reference.prints, ws, "after the source was repaired")


@pytest.mark.slow
def test_an_accepted_drop_passes_the_guard_and_repair_snapshot_mends_what_it_closed(
    reference: Reference, fleet_clean: Fleet, tmp_path: Path
) -> None:
    ws = copy_of_reference(reference, tmp_path / "ws", fleet_clean.env())
    # what a failed full refresh left on the old main: the customers' raw rows gone
    with duckdb.connect(str(ws.warehouse)) as con:
        con.execute(f"delete from {ADDRESSES}")
        con.execute(f"delete from {CUSTOMERS}")
    open_before = query(ws, f"select count(*) from {SNAPSHOT} where dbt_valid_to is null")[0][0]
    since = datetime.now()  # the snapshot's clock: dbt-duckdb's now()::timestamp, this machine's zone

    accept = ["--accept-row-drop", CUSTOMERS, "--accept-row-drop", ADDRESSES]
    accepted = run(ws, ["-m", "elt", "run", "--no-services", *accept])
    assert f"row drop guard: {CUSTOMERS} has 0 rows / 0 keys" in accepted.output, accepted.describe()
    assert "drop ACCEPTED" in accepted.output, accepted.describe()
    guards = {n: s for n, s in node_statuses(ws).items() if n.startswith("source_row_drop_guard_customers")}
    assert guards and set(guards.values()) == {"pass"}, guards
    closed = query(ws, f"select count(*) from {SNAPSHOT} where dbt_valid_to >= ?", [since])
    assert closed == [(open_before,)], "the accepted drop closes every customer's version (the damage)"

    # the source repaired, the damage shows: every run from now on fails the snapshot's unique test
    full_refresh_customers(ws)
    damaged = flow(ws)
    assert damaged.returncode == 1, damaged.describe()
    assert node_statuses(ws)["unique_snap_customers_dbt_scd_id"] == "fail", damaged.describe()

    command = ["-m", "elt", "repair-snapshot", "snap_customers", "--since", since.isoformat()]
    dry = run(ws, [*command, "--dry-run"])
    assert dry.returncode == 0 and "dry run: nothing written" in dry.output, dry.describe()
    assert snapshot_rows(ws) != snapshot_rows(reference.workspace), "a dry run changed the snapshot"
    repair = run(ws, command)
    assert repair.returncode == 0, repair.describe()
    assert f"did reopen {open_before} version(s)" in repair.output, repair.describe()
    assert snapshot_rows(ws) == snapshot_rows(reference.workspace), "the repaired snapshot differs"
    again = run(ws, command)
    assert again.returncode == 0 and "nothing to change" in again.output, again.describe()

    out = flow(ws)
    assert out.returncode == 0, out.describe()
    assert snapshot_rows(ws) == snapshot_rows(reference.workspace)
    assert_matches_clean(reference.prints, ws, "after repair-snapshot and a plain run")
