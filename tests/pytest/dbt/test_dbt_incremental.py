"""Incremental builds are exact: after the simulator changes the services and the loaders pick the
changes up, an incremental `dbt build` leaves every incremental model equal (EXCEPT ALL both ways) to a
`dbt run --full-refresh` of the same models on the same data. The snapshots record the changes as new
versions.
"""

from __future__ import annotations

from typing import Any

from tests.pytest.dbt.dbt_world import INCREMENTAL_MODELS, DbtWorld, failures

SIMULATOR_STEPS = 250


def test_incremental_equals_full_refresh(dbt_world: DbtWorld, first_build: dict[str, Any]) -> None:
    assert first_build["_exit_code"] == 0, "first build failed; see test_dbt_build"
    con = dbt_world.con()
    try:
        before = {m: con.execute(f"select count(*) from marts.{m}").fetchone()[0] for m in INCREMENTAL_MODELS}
    finally:
        con.close()

    summary = dbt_world.simulate(SIMULATOR_STEPS)
    for kind in ("new_order", "pay", "ship", "new_customer"):
        assert summary["kinds"].get(kind, 0) > 0, summary["kinds"]
    dbt_world.extract()

    incremental = dbt_world.dbt("build")
    assert incremental["_exit_code"] == 0, "\n".join(failures(incremental))
    kept = {
        r["unique_id"].split(".")[-1]: r["adapter_response"]
        for r in incremental["results"]
        if r["unique_id"].split(".")[-1] in INCREMENTAL_MODELS
    }
    assert set(kept) == set(INCREMENTAL_MODELS), kept

    con = dbt_world.con()
    try:
        after = {m: con.execute(f"select count(*) from marts.{m}").fetchone()[0] for m in INCREMENTAL_MODELS}
        # the simulator added orders, lines, payments and events: the increments must have landed
        for model in ("fct_orders", "fct_order_items", "fct_payments", "rt_events_per_minute"):
            assert after[model] > before[model], (model, before[model], after[model])
        assert after["rt_orders_today"] > 0, "simulated orders are stamped today; rt_orders_today is empty"
        con.execute("create schema if not exists compare_incremental")
        for model in INCREMENTAL_MODELS:
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
    if summary["kinds"].get("price_change", 0):
        assert closed_price_versions > 0, "price changes were simulated but no price version was closed"
    if summary["kinds"].get("profile_edit", 0) or summary["kinds"].get("erase", 0):
        assert closed_customer_versions > 0, "customer changes were simulated but no version was closed"

    selector = " ".join(INCREMENTAL_MODELS)
    full = dbt_world.dbt("run", "--full-refresh", "--select", selector)
    assert full["_exit_code"] == 0, "\n".join(failures(full))

    con = dbt_world.con()
    try:
        for model in INCREMENTAL_MODELS:
            only_incremental = con.execute(
                f"select count(*) from (select * from compare_incremental.{model} "
                f"except all select * from marts.{model})"
            ).fetchone()[0]
            only_full = con.execute(
                f"select count(*) from (select * from marts.{model} "
                f"except all select * from compare_incremental.{model})"
            ).fetchone()[0]
            assert (only_incremental, only_full) == (0, 0), (model, only_incremental, only_full)
        con.execute("drop schema compare_incremental cascade")
    finally:
        con.close()
