"""Full load, no-change re-run, full refresh and incremental changes, against real services."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from extract import scheduling
from extract.runner import run
from services.launcher import Fleet
from services.simulator.simulator import Simulator
from tests.pytest.extract.helpers import LoaderEnv, assert_matches_source
from tests.pytest.extract.test_probe import probed

ALL = ("customers", "catalog", "orders", "payments", "events")
# the services whose records the simulator updates and deletes (catalog and events are covered above)
CHANGING = ("customers", "orders", "payments")


def _loads(env: LoaderEnv) -> dict[str, int]:
    con = env.con()
    try:
        return {s: con.execute(f"select count(*) from raw_{s}._dlt_loads").fetchone()[0] for s in ALL}
    finally:
        con.close()


def test_full_load_equals_source_and_rerun_loads_nothing(
    fleet: Fleet, loader: Callable[..., LoaderEnv], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = loader(fleet)
    result = run([])
    assert result.failures == {}
    counts = assert_matches_source(env, fleet.data_dir, ALL)
    assert all(n > 0 for k, n in counts.items() if k != "customers.deletions"), counts
    assert result.table_rows[("customers", "customers")] == counts["customers.customers"]
    con = env.con()
    try:
        for service in ALL:
            tables = [
                r[0]
                for r in con.execute(
                    "select table_name from information_schema.tables where table_schema = ? "
                    "and table_name not like '\\_dlt%' escape '\\'",
                    [f"raw_{service}"],
                ).fetchall()
            ]
            for table in tables:
                orphans = con.execute(
                    f"select count(*) from raw_{service}.{table} where _dlt_load_id is null or _dlt_load_id "
                    f"not in (select load_id from raw_{service}._dlt_loads where status = 0)"
                ).fetchone()[0]
                assert orphans == 0, f"raw_{service}.{table}: {orphans} rows without a committed load id"
        types = dict(
            con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'raw_orders' and table_name = 'orders'"
            ).fetchall()
        )
        assert types["updated_at"] == "TIMESTAMP WITH TIME ZONE" and types["total_minor"] == "BIGINT"
        run_row = con.execute("select status, rows, error from ops.runs").fetchall()
        assert run_row == [("success", result.rows, None)]
        logged = dict(con.execute("select source || '.' || table_name, rows from ops.run_tables").fetchall())
        assert logged["orders.orders__items"] == counts["orders.orders__items"]
    finally:
        con.close()

    before = _loads(env)
    verdicts = probed(monkeypatch)
    built: list[str] = []
    monkeypatch.setattr(scheduling, "run_services", lambda todo, *a, **k: built.extend(s.name for s in todo))
    again = run([])
    assert again.failures == {} and again.rows == 0, again.table_rows
    assert _loads(env) == before, "a run with no source changes must not create loads"
    assert_matches_source(env, fleet.data_dir, ALL)
    # every service probed with nothing new (extract/probe.py): none reached dlt, yet each left what its
    # zero-row load left - a load horizon at the run's cutoff (the consistent cut moves on), its run log
    assert verdicts == {s: [True] for s in ALL}, verdicts
    assert built == [], "no service with nothing new may reach dlt"
    con = env.con()
    try:
        (run_id,) = con.execute("select run_id from ops.runs order by started_at desc limit 1").fetchone()
        horizons = con.execute(
            "select service, cutoff_at from ops.source_horizons where run_id = ? order by service", [run_id]
        ).fetchall()
        endpoints = con.execute(
            "select source, endpoint, loaded_rows, status from ops.run_endpoints where run_id = ?", [run_id]
        ).fetchall()
        inputs = con.execute(
            "select name, detail from ops.run_inputs where run_id = ? and kind = 'source'", [run_id]
        ).fetchall()
    finally:
        con.close()
    assert [s for s, _ in horizons] == sorted(ALL)
    assert {at for _, at in horizons} == {again.cutoff}
    assert {(s, e) for s, e, *_ in endpoints} == {
        ("customers", "customers"),
        ("customers", "deletions"),
        ("catalog", "products"),
        ("catalog", "categories"),
        ("orders", "orders"),
        ("payments", "payments"),
        ("payments", "refunds"),
        ("events", "events"),
    }
    assert all(rows == 0 and status == "loaded" for *_, rows, status in endpoints), endpoints
    assert sorted(name for name, _ in inputs) == sorted(ALL)
    assert all("cursors: " in detail for _, detail in inputs)


def _snapshot(env: LoaderEnv, service: str, tables: tuple[str, ...]) -> dict[str, list]:
    con = env.con()
    try:
        out = {}
        for table in tables:
            cols = [
                r[0]
                for r in con.execute(
                    "select column_name from information_schema.columns where table_schema = ? "
                    "and table_name = ? and column_name not like '\\_dlt%' escape '\\' order by column_name",
                    [f"raw_{service}", table],
                ).fetchall()
            ]
            out[table] = con.execute(
                f"select {', '.join(cols)} from raw_{service}.{table} order by all"
            ).fetchall()
        return out
    finally:
        con.close()


def test_full_refresh_twice_is_identical(fleet: Fleet, loader: Callable[..., LoaderEnv]) -> None:
    env = loader(fleet, SOURCES__EXTRACT__PARALLEL_SERVICES="2")  # and the threaded path is exact too
    services = ["customers", "catalog"]
    tables = {"customers": ("customers", "customers__addresses"), "catalog": ("products", "categories")}
    first = run(services, full_refresh=True)
    snap1 = {s: _snapshot(env, s, tables[s]) for s in services}
    second = run(services, full_refresh=True)
    snap2 = {s: _snapshot(env, s, tables[s]) for s in services}
    assert first.failures == second.failures == {}
    assert second.rows == first.rows > 0
    assert snap1 == snap2
    assert_matches_source(env, fleet.data_dir, tuple(services))


def test_incremental_follows_changes_deletes_and_late_commits(
    own_fleet: Fleet, loader: Callable[..., LoaderEnv]
) -> None:
    env = loader(own_fleet, SOURCES__EXTRACT__LAG_SECONDS="90")
    assert run(list(CHANGING)).failures == {}
    # one simulator throughout: its late stamps may then fall before what the middle run loaded
    with Simulator(own_fleet.data_dir, seed=7, late_seconds=60) as sim:
        busy = sim.step(300)
        assert run(list(CHANGING)).failures == {}
        assert_matches_source(env, own_fleet.data_dir, CHANGING)
        con = env.con()
        loaded_max = con.execute("select max(updated_at) from raw_orders.orders").fetchone()[0]
        con.close()
        late = sim.step(150, late_commit_share=1.0)
    # the premise: some late records carry an updated_at below what the previous run already loaded
    stamped = sorted(r["stamped_at"] for r in late["late"])
    assert stamped and stamped[0] < loaded_max.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), (stamped[:3], loaded_max)
    erased = busy["kinds"].get("erase", 0) + late["kinds"].get("erase", 0)
    assert erased > 0, (busy["kinds"], late["kinds"])
    result = run(list(CHANGING))
    assert result.failures == {}
    counts = assert_matches_source(env, own_fleet.data_dir, CHANGING)
    assert counts["customers.deletions"] > 0
    con = env.con()
    try:
        leftovers = con.execute(
            "select count(*) from raw_customers.customers__addresses where customer_id in "
            "(select customer_id from raw_customers.deletions)"
        ).fetchone()[0]
        assert leftovers == 0, "erased customers' addresses must be removed from raw"
    finally:
        con.close()
    quiet = run(list(CHANGING))
    assert quiet.failures == {} and quiet.rows == 0, quiet.table_rows


@pytest.mark.parametrize("service", ["orders"])
def test_small_pages_walk_every_page(fleet: Fleet, loader: Callable[..., LoaderEnv], service: str) -> None:
    """Many small pages (and OAuth on every one) still give exactly the source's rows."""
    env = loader(fleet, SOURCES__EXTRACT__PAGE_SIZE="97")
    result = run([service])
    assert result.failures == {}
    assert_matches_source(env, fleet.data_dir, (service,))
