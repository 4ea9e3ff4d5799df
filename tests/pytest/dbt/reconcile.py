"""Every mart against the ground truth (truth.py), to the cent: per order, per placement day and
country, per daily-revenue cell, per customer, and the payment, line, cohort and funnel totals.

Why a separate module: the same comparison runs on the warehouse marts and on the published Parquet
(``exports_connection`` puts a view per published mart under ``marts.`` in an in-memory DuckDB), so a
test can say "the published version is right", not only "the warehouse is".
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from tests.pytest.dbt.truth import Truth

MAX_SHOWN = 5  # differences listed per check


def exports_connection(version: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one ``marts.<name>`` view per mart of a published version folder."""
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute("create schema marts")
    for entry in sorted(version.iterdir()):
        if entry.suffix == ".parquet":
            source = f"read_parquet('{entry}')"
        elif entry.is_dir() and any(entry.rglob("*.parquet")):
            source = f"read_parquet('{entry}/**/*.parquet', hive_partitioning = true)"
        else:
            continue
        con.execute(f'create view marts."{entry.name.removesuffix(".parquet")}" as select * from {source}')
    return con


def _diff(name: str, want: dict[Any, Any], got: dict[Any, Any]) -> list[str]:
    """What differs between two keyed maps, a few examples each way."""
    problems = []
    missing = sorted(set(want) - set(got), key=str)
    extra = sorted(set(got) - set(want), key=str)
    wrong = sorted((k for k in set(want) & set(got) if want[k] != got[k]), key=str)
    if missing:
        problems.append(f"{name}: {len(missing)} missing, e.g. {missing[:MAX_SHOWN]}")
    if extra:
        problems.append(f"{name}: {len(extra)} not in the sources, e.g. {extra[:MAX_SHOWN]}")
    if wrong:
        shown = [(k, "want", want[k], "got", got[k]) for k in wrong[:MAX_SHOWN]]
        problems.append(f"{name}: {len(wrong)} differ, e.g. {shown}")
    return problems


def _rows(con: duckdb.DuckDBPyConnection, sql: str, key_width: int = 1) -> dict[Any, tuple[Any, ...]]:
    """``{the first key_width columns: the rest}`` for each row of ``sql``."""
    out = {}
    for row in con.execute(sql).fetchall():
        key = row[0] if key_width == 1 else tuple(row[:key_width])
        out[key] = tuple(row[key_width:])
    return out


def mart_differences(con: duckdb.DuckDBPyConnection, truth: Truth) -> list[str]:
    """Every difference between the marts under ``marts.`` on ``con`` and ``truth``; empty when exact."""
    problems: list[str] = []
    orders = {
        oid: (o["customer_id"], o["status"], o["total_usd"], o["paid_usd"], o["refunded_usd"], o["net_usd"])
        for oid, o in truth.orders.items()
    }
    problems += _diff(
        "fct_orders per order",
        orders,
        _rows(
            con,
            "select order_id, customer_id, order_status, total_amount_usd, paid_amount_usd, "
            "refunded_amount_usd, net_paid_amount_usd from marts.fct_orders",
        ),
    )
    by_day_country = {
        key: (c["orders"], c["total_usd"], c["paid_usd"], c["refunded_usd"])
        for key, c in truth.orders_by_day_country.items()
    }
    problems += _diff(
        "fct_orders per day and country",
        by_day_country,
        _rows(
            con,
            "select placed_date, shipping_country_code, count(*), sum(total_amount_usd), "
            "sum(paid_amount_usd), sum(refunded_amount_usd) from marts.fct_orders group by all",
            2,
        ),
    )
    revenue = {
        key: (
            len(c["paid_orders"]),
            len(c["returned_orders"]),
            c["paid_units"],
            c["paid_gross_usd"],
            c["returned_gross_usd"],
            c["kept_gross_usd"],
        )
        for key, c in truth.daily_revenue.items()
    }
    problems += _diff(
        "fct_daily_revenue per day, country and category",
        revenue,
        _rows(
            con,
            "select revenue_date, country_code, category_name, paid_order_count, returned_order_count, "
            "paid_units, paid_gross_amount_usd, returned_gross_amount_usd, kept_gross_amount_usd "
            "from marts.fct_daily_revenue",
            3,
        ),
    )
    customers = {
        cid: (c["order_count"], c["paid_order_count"], c["lifetime_net_paid_usd"])
        for cid, c in truth.customers.items()
    }
    problems += _diff(
        "dim_customers per customer",
        customers,
        _rows(
            con,
            "select customer_id, order_count, paid_order_count, lifetime_net_paid_usd "
            "from marts.dim_customers",
        ),
    )
    (count, attempted, paid, refunded) = con.execute(
        "select count(*), coalesce(sum(attempted_amount_usd), 0), coalesce(sum(paid_amount_usd), 0), "
        "coalesce(sum(refunded_amount_usd), 0) from marts.fct_payments"
    ).fetchone()
    paid_truth = sum((o["paid_usd"] for o in truth.orders.values()), Decimal(0))
    want = (truth.payments_count, truth.payments_usd, paid_truth, truth.refunds_usd)
    if (count, attempted, paid, refunded) != want:
        problems.append(f"fct_payments totals: want {want}, got {(count, attempted, paid, refunded)}")
    (items,) = con.execute("select count(*) from marts.fct_order_items").fetchone()
    if items != truth.order_items_count:
        problems.append(f"fct_order_items: want {truth.order_items_count} lines, got {items}")
    problems += _diff(
        "fct_customer_cohorts_monthly",
        {key: (n,) for key, n in truth.cohorts.items()},
        _rows(
            con,
            "select cohort_month, activity_month, active_customers from marts.fct_customer_cohorts_monthly",
            2,
        ),
    )
    funnel = con.execute("select sum(sessions), sum(order_sessions) from marts.fct_funnel_daily").fetchone()
    if tuple(funnel) != (truth.sessions, truth.order_sessions):
        problems.append(f"fct_funnel_daily: want {(truth.sessions, truth.order_sessions)}, got {funnel}")
    return problems
