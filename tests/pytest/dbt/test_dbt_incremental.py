"""Incremental builds are exact: after the simulator changes the services and the loaders pick the
changes up, an incremental `dbt build` leaves every incremental model (the facts and the real-time
marts) equal (EXCEPT ALL both ways) to a `dbt run --full-refresh` of the same models on the same data.
The snapshots record the changes as new versions.

Late commits: a first round of changes is loaded and merged by the stream's `dbt run -s tag:realtime`;
the second round commits a share of its changes late, stamped a few seconds behind changes the
real-time marts already merged (inside the loaders' lag window, so raw does get them), and is merged
by the `dbt build`. A model that re-reads only from its high-water mark never merges those; the
comparison with the full refresh catches it. The simulator's clock is frozen at the test's start so
"behind the mark" does not depend on how long the extract and the first run take.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from services.simulator import Simulator
from services.store.timefmt import now_us
from tests.pytest.support.dbt_world import DbtWorld, failures

SIMULATOR_STEPS = 250
LATE_STEPS = 250
LATE_COMMIT_SHARE = 0.3
# behind the newest change already merged, and well inside the loaders' lag window (lag_seconds)
LATE_SECONDS = 10.0
REALTIME_INCREMENTAL = {"rt_events_per_minute", "rt_orders_today"}


def incremental_models(dbt_world: DbtWorld) -> list[str]:
    """Every incremental model of the project (from the manifest, so a new one joins the check)."""
    nodes = dbt_world.manifest()["nodes"].values()
    return sorted(
        n["name"]
        for n in nodes
        if n["resource_type"] == "model" and n["config"]["materialized"] == "incremental"
    )


def build_incremental(dbt_world: DbtWorld, models: list[str], *args: str) -> None:
    """`dbt build` (or ``args``); every one of ``models`` must have run (not been skipped)."""
    incremental = dbt_world.dbt(*(args or ("build",)))
    assert incremental["_exit_code"] == 0, "\n".join(failures(incremental)) or incremental["_stdout"][-3000:]
    ran = {r["unique_id"].split(".")[-1] for r in incremental["results"]} & set(models)
    assert ran == set(models), ran


def late_orders_behind_the_mark(dbt_world: DbtWorld, late: list[dict[str, Any]], mark: object) -> int:
    """Orders placed today whose newest version in raw is a late commit stamped before ``mark``: the
    rows a model without a look-back misses."""
    ids = sorted({key for commit in late for table, key in commit["records"] if table == "orders"})
    if not ids:
        return 0
    con = dbt_world.con()
    try:
        (count,) = con.execute(
            "select count(*) from staging.stg_orders__orders where order_id in (select unnest(?)) "
            "and cast(placed_at as date) = cast(timezone('UTC', current_timestamp) as date) "
            "and updated_at < ?",
            [ids, mark],
        ).fetchone()
    finally:
        con.close()
    return int(count)


def test_incremental_equals_full_refresh(dbt_world: DbtWorld, first_build: dict[str, Any]) -> None:
    assert first_build["_exit_code"] == 0, "first build failed; see test_dbt_build"
    models = incremental_models(dbt_world)
    assert set(models) >= REALTIME_INCREMENTAL, models
    con = dbt_world.con()
    try:
        before = {m: con.execute(f"select count(*) from marts.{m}").fetchone()[0] for m in models}
    finally:
        con.close()

    frozen = now_us()
    with Simulator(dbt_world.data_dir, 7, clock=lambda: frozen, late_seconds=LATE_SECONDS) as sim:
        summary = sim.step(SIMULATOR_STEPS)
        for kind in ("new_order", "pay", "ship", "new_customer"):
            assert summary["kinds"].get(kind, 0) > 0, summary["kinds"]
        dbt_world.extract()
        # the stream's own command: the real-time marts take their high-water mark from these changes
        build_incremental(dbt_world, sorted(REALTIME_INCREMENTAL), "run", "--select", "tag:realtime")
        con = dbt_world.con()
        try:
            (mark,) = con.execute("select max(updated_at) from marts.rt_orders_today").fetchone()
        finally:
            con.close()
        assert mark is not None, "simulated orders are stamped today; rt_orders_today is empty"

        late_round = sim.step(LATE_STEPS, LATE_COMMIT_SHARE)
    assert late_round["late"], "no late commit was simulated"
    dbt_world.extract()
    behind = late_orders_behind_the_mark(dbt_world, late_round["late"], mark)
    assert behind > 0, "no late-committed order of today landed behind rt_orders_today's high-water mark"
    build_incremental(dbt_world, models)

    con = dbt_world.con()
    try:
        after = {m: con.execute(f"select count(*) from marts.{m}").fetchone()[0] for m in models}
        # the simulator added orders, lines, payments and events: the increments must have landed
        for model in ("fct_orders", "fct_order_items", "fct_payments", "rt_events_per_minute"):
            assert after[model] > before[model], (model, before[model], after[model])
        con.execute("create schema if not exists compare_incremental")
        for model in models:
            con.execute(f"create or replace table compare_incremental.{model} as select * from marts.{model}")
        snap_prices = con.execute(
            "select count(*) from snapshots.snap_product_prices where dbt_valid_to is not null"
        )
        closed_price_versions = snap_prices.fetchone()[0]
        snap_customers = con.execute(
            "select count(*) from snapshots.snap_customers where dbt_valid_to is not null"
        )
        closed_customer_versions = snap_customers.fetchone()[0]
    finally:
        con.close()
    kinds = Counter(summary["kinds"]) + Counter(late_round["kinds"])
    if kinds["price_change"]:
        assert closed_price_versions > 0, "price changes were simulated but no price version was closed"
    if kinds["profile_edit"] or kinds["erase"]:
        assert closed_customer_versions > 0, "customer changes were simulated but no version was closed"

    full = dbt_world.dbt("run", "--full-refresh", "--select", " ".join(models))
    assert full["_exit_code"] == 0, "\n".join(failures(full))

    con = dbt_world.con()
    try:
        differences = {}
        for model in models:
            only_incremental = con.execute(
                f"select count(*) from (select * from compare_incremental.{model} "
                f"except all select * from marts.{model})"
            ).fetchone()[0]
            only_full = con.execute(
                f"select count(*) from (select * from marts.{model} "
                f"except all select * from compare_incremental.{model})"
            ).fetchone()[0]
            if (only_incremental, only_full) != (0, 0):
                differences[model] = {"only_incremental": only_incremental, "only_full_refresh": only_full}
        late = f"{behind} late orders behind the mark"
        assert not differences, f"incremental != full refresh ({late}): {differences}"
        con.execute("drop schema compare_incremental cascade")
    finally:
        con.close()
