"""Helpers for the elt suite: isolated paths, and a small fake dbt project output (a real DuckDB file
with mart tables plus the manifest.json/run_results.json dbt would write) so publishing can be tested
without running dbt."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb


@dataclass
class EltPaths:
    root: Path
    warehouse: Path
    exports: Path
    run: Path
    target: Path


def fill_marts(warehouse: Path, generation: int = 0, orders: int = 500) -> None:
    """(Re)create the fake marts; ``generation`` is stamped into every row so versions differ."""
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema if not exists main_marts")
        con.execute(
            f"""
            create or replace table main_marts.fct_orders as
            select i::bigint as order_id,
                   date_trunc('month', timestamp '2026-01-01' + to_days((i * 7) % 200)::interval)::date
                       as order_month,
                   (i * 1234)::hugeint as total_minor,
                   {generation} as generation,
                   'st' || (i % 5) as status,
                   (timestamptz '2026-01-01 00:00:00+00' + to_minutes(i)) as placed_at,
                   (timestamp '2026-01-02 00:00:00' + to_minutes(i)) as shipped_at
            from range({orders}) t(i)
            """
        )
        con.execute(
            f"""
            create or replace table main_marts.dim_customers as
            select i as customer_id, md5('k' || i) as customer_key, {generation} as generation,
                   ['a', 'b'][1 + i % 2] as segment
            from range(50) t(i)
            """
        )
        con.execute(
            f"""create or replace view main_marts.rt_orders_today as
                select {generation} as generation, date '2026-01-01' as order_month where false"""
        )
        con.execute("create or replace table main_marts.not_published as select 1 as x")
        con.execute("create schema if not exists raw_orders")
        con.execute(
            "create table if not exists raw_orders._dlt_loads "
            "(load_id varchar, schema_name varchar, status bigint, inserted_at timestamptz)"
        )
        con.execute(
            "insert into raw_orders._dlt_loads values (?, 'orders', 0, now()), (?, 'orders', 1, now())",
            [f"17000000{generation:02d}.000001", f"17000000{generation:02d}.000002"],
        )


def _model(
    name: str, tags: list[str], meta: dict[str, str] | None = None, materialized: str = "table"
) -> dict:
    return {
        "resource_type": "model",
        "name": name,
        "database": "shop",
        "schema": "main_marts",
        "alias": name,
        "tags": tags,
        "meta": meta or {},
        "description": f"the {name} mart",
        "columns": {"generation": {"name": "generation", "description": "which fill wrote the row"}},
        "config": {"enabled": True, "materialized": materialized, "tags": tags, "meta": meta or {}},
    }


def write_dbt_artifacts(target: Path, *, failed: bool = False) -> str:
    """A manifest with three published models (one partitioned, one empty view), one unpublished model,
    one test; and run_results for a build. Returns the invocation id."""
    nodes = {
        "model.shop.fct_orders": _model(
            "fct_orders",
            ["publish"],
            {"publish_partition_by": "order_month", "publish_high_water_mark": "placed_at"},
        ),
        "model.shop.dim_customers": _model("dim_customers", ["publish"]),
        "model.shop.rt_orders_today": _model(
            "rt_orders_today", ["realtime", "publish"], {"publish_partition_by": "order_month"}, "view"
        ),
        "model.shop.not_published": _model("not_published", []),
        "test.shop.unique_fct_orders_order_id": {"resource_type": "test", "name": "u", "tags": ["publish"]},
    }
    (target / "manifest.json").write_text(json.dumps({"nodes": nodes}))
    invocation = str(uuid.uuid4())
    results = [
        {"unique_id": "model.shop.fct_orders", "status": "success"},
        {"unique_id": "test.shop.unique_fct_orders_order_id", "status": "fail" if failed else "pass"},
    ]
    (target / "run_results.json").write_text(
        json.dumps(
            {
                "metadata": {"invocation_id": invocation, "generated_at": "2026-11-29T00:00:00Z"},
                "args": {"which": "build"},
                "results": results,
            }
        )
    )
    return invocation
