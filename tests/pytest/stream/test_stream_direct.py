"""The stream's two direct paths write what dbt and dlt would: on copies of one real warehouse, the
real-time models' compiled SQL run directly equals ``dbt run -s tag:realtime``, and a batch appended by
``rawdirect`` equals the same batch loaded by the dlt pipeline (rows, column types, state), after which
the batch loader carries on from the direct append's position."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from services.simulator import Simulator
from tests.pytest.support.stream_world import REPO, StreamWorld
from transform import dbt_runner

MARTS = ("rt_events_per_minute", "rt_funnel_live", "rt_orders_today")


def copy_env(w: StreamWorld, root: Path, name: str) -> tuple[Path, dict[str, str]]:
    """A copy of the world's warehouse with its own run, dlt and exports folders (state from the copy)."""
    home = root / name
    (home / "run").mkdir(parents=True)
    warehouse = home / "shop.duckdb"
    with w.world_lock("stream test: copy"):
        shutil.copyfile(w.warehouse, warehouse)
    env = {
        **w.env,
        "SHOP_WAREHOUSE": str(warehouse),
        "SHOP_RUN_DIR": str(home / "run"),
        "SHOP_DLT_DIR": str(home / "dlt"),
        "SHOP_EXPORTS_DIR": str(home / "exports"),
    }
    return warehouse, env


def helper(env: dict[str, str], *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.pytest.stream.direct_helper", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def differences(a: Path, b: Path, sql_a: str, sql_b: str) -> tuple[int, int]:
    """Rows only in ``sql_a`` (on ``a``) and only in ``sql_b`` (on ``b``), duplicates counted."""
    with duckdb.connect() as con:
        con.execute(f"attach '{a}' as a (read_only)")
        con.execute(f"attach '{b}' as b (read_only)")
        left = con.execute(f"select count(*) from ({sql_a} except all {sql_b})").fetchone()[0]
        right = con.execute(f"select count(*) from ({sql_b} except all {sql_a})").fetchone()[0]
    return left, right


def columns(warehouse: Path, schema: str, table: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            "select column_name, data_type, is_nullable from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, table],
        ).fetchall()


@pytest.mark.slow  # three dbt parses in child processes; make test covers the direct SQL through
# test_stream_e2e.py (the stream's marts, run directly after its start-up, equal a full rebuild)
def test_compiled_realtime_sql_equals_dbt_run(stream_world: StreamWorld, tmp_path: Path) -> None:
    """New events and order changes since the marts were built: the direct run merges them exactly
    as dbt's incremental run does (same rows in every real-time mart, schema untouched)."""
    w = stream_world
    w.run(["-m", "elt.stream", "--once", "--no-marts"])  # raw up to date
    w.run(["-m", "elt.stream", "--once"])  # marts built (dbt at start-up) and published
    sim = Simulator(w.data_dir, 51)
    try:
        sim.step(40)  # orders, payments and their events
        sim.run_events(2000, duration=0.2, tick_s=0.01)
    finally:
        sim.close()
    w.run(["-m", "extract", "events", "orders", "--wait", "300"])
    by_dbt, dbt_env = copy_env(w, tmp_path, "dbt")
    direct, direct_env = copy_env(w, tmp_path, "direct")
    env = dbt_runner.dbt_env(dbt_env)
    env["SHOP_WAREHOUSE"] = str(by_dbt)
    proc = subprocess.run(
        [*dbt_runner.dbt_command(["run", "-s", "tag:realtime"]), "--target-path", str(tmp_path / "target")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    ran = helper(direct_env, "marts")
    assert ran["direct"], ran
    assert len(ran["models"]) == len(MARTS)
    for mart in MARTS:
        assert columns(direct, "marts", mart) == columns(by_dbt, "marts", mart)
        query = "select * from {db}.marts." + mart
        left, right = differences(by_dbt, direct, query.format(db="a"), query.format(db="b"))
        assert (left, right) == (0, 0), f"{mart}: {left} rows only by dbt, {right} only direct"
    with duckdb.connect(str(direct), read_only=True) as con:
        newest = con.execute("select max(last_event_id) from marts.rt_events_per_minute").fetchone()[0]
        loaded = con.execute("select max(event_id) from raw_events.events").fetchone()[0]
    assert newest == loaded  # the direct run did merge the new events (not an empty refresh)


def test_direct_raw_append_equals_dlt_load_and_the_batch_loader_follows(
    stream_world: StreamWorld, tmp_path: Path
) -> None:
    """The same page of events committed through dlt on one copy and by rawdirect on another: the same
    rows, the same table schema, the same committed position; then ``python -m extract events`` on the
    direct copy restores that position and loads only the events after it."""
    w = stream_world
    w.run(["-m", "elt.stream", "--once", "--no-marts"])
    committed = max(w.raw_event_ids()[1])
    sim = Simulator(w.data_dir, 52)
    try:
        sim.run_events(3000, duration=0.2, tick_s=0.01)
    finally:
        sim.close()
    by_dlt, dlt_env = copy_env(w, tmp_path, "dlt")
    direct, direct_env = copy_env(w, tmp_path, "direct")
    via_dlt = helper(dlt_env, "raw", "dlt", str(committed))
    via_direct = helper(direct_env, "raw", "direct", str(committed))
    assert via_direct["direct"] and not via_dlt["direct"]
    assert via_direct["rows"] == via_dlt["rows"] > 0
    assert via_direct["after"] == via_dlt["after"] > committed
    assert columns(direct, "raw_events", "events") == columns(by_dlt, "raw_events", "events")
    payload = "select * exclude (_dlt_load_id) from {db}.raw_events.events"
    assert differences(by_dlt, direct, payload.format(db="a"), payload.format(db="b")) == (0, 0)
    committed_rows = (
        "select count(*) from {db}.raw_events.events where _dlt_load_id in "
        "(select load_id from {db}.raw_events._dlt_loads where status = 0)"
    )
    with duckdb.connect() as con:
        con.execute(f"attach '{by_dlt}' as a (read_only)")
        con.execute(f"attach '{direct}' as b (read_only)")
        assert (
            con.execute(committed_rows.format(db="a")).fetchone()
            == con.execute(committed_rows.format(db="b")).fetchone()
        )
    # the batch loader (its own dlt folder, here a fresh one) continues after the direct append
    sim = Simulator(w.data_dir, 53)
    try:
        sim.run_events(1000, duration=0.1, tick_s=0.01)
    finally:
        sim.close()
    loader_env = {**direct_env, "SHOP_DLT_DIR": str(tmp_path / "direct" / "dlt")}
    subprocess.run(
        [sys.executable, "-m", "extract", "events", "--wait", "300"],
        cwd=REPO,
        env=loader_env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    with duckdb.connect(str(direct), read_only=True) as con:
        ids = [r[0] for r in con.execute("select event_id from raw_events.events order by 1").fetchall()]
    assert len(ids) == len(set(ids)), "the batch loader loaded an id the direct append had committed"
    assert ids == w.service_event_ids()
