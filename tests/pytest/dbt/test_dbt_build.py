"""`dbt build` on real loads passes: every model, seed, snapshot, data test and unit test."""

from __future__ import annotations

from typing import Any

from tests.pytest.support.dbt_world import DbtWorld, failures


def test_dbt_build_passes_on_loaded_data(dbt_world: DbtWorld, first_build: dict[str, Any]) -> None:
    assert first_build["_exit_code"] == 0, "\n".join(failures(first_build)) or first_build["_stdout"][-4000:]
    assert first_build["_fresh"], "dbt wrote no run_results.json for this build"
    kinds: dict[str, int] = {}
    for result in first_build["results"]:
        kind = result["unique_id"].split(".")[0]
        kinds[kind] = kinds.get(kind, 0) + 1
    # the build really covered every layer: models, seeds, snapshots, data tests and unit tests
    assert kinds.get("model", 0) >= 20, kinds
    assert kinds.get("seed", 0) == 3, kinds
    assert kinds.get("snapshot", 0) == 2, kinds
    assert kinds.get("test", 0) >= 150, kinds
    assert kinds.get("unit_test", 0) >= 8, kinds


def test_published_marts_are_tagged_and_contracted(dbt_world: DbtWorld, first_build: dict[str, Any]) -> None:
    """P publishes what the manifest tags `publish`: each of those has an enforced contract; large facts
    name their partition column, and that column exists in the contract."""
    nodes = dbt_world.manifest()["nodes"].values()
    published = {n["name"]: n for n in nodes if n["resource_type"] == "model" and "publish" in n["tags"]}
    expected = {
        "dim_customers", "dim_products", "fct_orders", "fct_order_items", "fct_payments",
        "fct_daily_revenue", "fct_customer_cohorts_monthly", "fct_funnel_daily",
        "rt_events_per_minute", "rt_orders_today", "rt_funnel_live",
    }  # fmt: skip
    assert expected <= set(published), expected - set(published)
    for name, node in published.items():
        assert node["config"]["contract"]["enforced"], name
        assert node["schema"] == "marts", name
    for name in ("fct_orders", "fct_order_items", "fct_payments"):
        column = published[name]["config"]["meta"]["publish_partition_by"]
        assert column in published[name]["columns"], (name, column)
    realtime = {n["name"] for n in published.values() if "realtime" in n["tags"]}
    assert realtime == {"rt_events_per_minute", "rt_orders_today", "rt_funnel_live"}


def test_uncommitted_rows_are_invisible(dbt_world: DbtWorld, first_build: dict[str, Any]) -> None:
    """Rows whose dlt load never committed (a killed load) never reach staging."""
    con = dbt_world.con()
    try:
        con.execute(
            "insert into raw_orders.orders select * replace (order_id + 10000000 as order_id, "
            "'9999999999.999' as _dlt_load_id) from raw_orders.orders limit 5"
        )
        visible = con.execute(
            "select count(*) from staging.stg_orders__orders where order_id > 10000000"
        ).fetchone()
        raw = con.execute("select count(*) from raw_orders.orders where order_id > 10000000").fetchone()
        con.execute("delete from raw_orders.orders where order_id > 10000000")
    finally:
        con.close()
    assert raw == (5,)
    assert visible == (0,)


def test_every_model_and_column_is_documented(dbt_world: DbtWorld, first_build: dict[str, Any]) -> None:
    """Every model, seed and snapshot has a description, and so does every column it really has."""
    nodes = [
        n
        for n in dbt_world.manifest()["nodes"].values()
        if n["resource_type"] in ("model", "seed", "snapshot")
    ]
    con = dbt_world.con()
    try:
        missing = []
        for node in nodes:
            if not node["description"].strip():
                missing.append(node["name"])
            actual = [
                r[0]
                for r in con.execute(
                    "select column_name from information_schema.columns "
                    "where table_schema = ? and table_name = ?",
                    [node["schema"], node["alias"]],
                ).fetchall()
            ]
            assert actual, f"{node['schema']}.{node['alias']} not built"
            documented = {name for name, col in node["columns"].items() if col["description"].strip()}
            missing += [f"{node['name']}.{c}" for c in actual if c not in documented]
    finally:
        con.close()
    assert not missing, missing
