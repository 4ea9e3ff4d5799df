"""The marts agree with an independent computation from the services' own SQLite data (tests/pytest/dbt/
truth.py: plain Python, the FX seed, no SQL): row counts, and money to the cent."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.pytest.dbt.truth import Truth, compute
from tests.pytest.support.dbt_world import DbtWorld


@pytest.fixture(scope="module")
def truth_and_marts(dbt_world: DbtWorld, first_build: dict[str, Any]) -> tuple[Truth, dict[str, Any]]:
    """Ground truth and the marts, read at the same moment (no dbt or extract runs in between)."""
    assert first_build["_exit_code"] == 0, "first build failed; see test_dbt_build"
    con = dbt_world.con()
    try:
        marts = {
            "orders": {
                r[0]: r[1:]
                for r in con.execute(
                    "select order_id, customer_id, order_status, total_amount_usd, paid_amount_usd, "
                    "refunded_amount_usd, net_paid_amount_usd from marts.fct_orders"
                ).fetchall()
            },
            "customers": {
                r[0]: r[1:]
                for r in con.execute(
                    "select customer_id, order_count, lifetime_net_paid_usd from marts.dim_customers"
                ).fetchall()
            },
            "payments": con.execute(
                "select count(*), sum(attempted_amount_usd), sum(refunded_amount_usd) from marts.fct_payments"
            ).fetchone(),
            "order_items": con.execute("select count(*) from marts.fct_order_items").fetchone()[0],
            "revenue": dict(
                con.execute(
                    "select revenue_date, sum(kept_gross_amount_usd) from marts.fct_daily_revenue "
                    "group by all"
                ).fetchall()
            ),
            "cohorts": {
                (r[0], r[1]): r[2]
                for r in con.execute(
                    "select cohort_month, activity_month, active_customers "
                    "from marts.fct_customer_cohorts_monthly"
                ).fetchall()
            },
            "funnel": con.execute(
                "select sum(sessions), sum(order_sessions) from marts.fct_funnel_daily"
            ).fetchone(),
        }
    finally:
        con.close()
    return compute(dbt_world.data_dir), marts


def test_orders_match_source_to_the_cent(truth_and_marts: tuple[Truth, dict[str, Any]]) -> None:
    truth, marts = truth_and_marts
    assert len(truth.orders) > 100, "too little data for a meaningful comparison"
    assert set(marts["orders"]) == set(truth.orders)
    mismatched = []
    for order_id, t in truth.orders.items():
        expected = (
            t["customer_id"],
            t["status"],
            t["total_usd"],
            t["paid_usd"],
            t["refunded_usd"],
            t["net_usd"],
        )
        if marts["orders"][order_id] != expected:
            mismatched.append((order_id, expected, marts["orders"][order_id]))
    assert not mismatched, mismatched[:5]
    assert sum(m[5] for m in marts["orders"].values()) == sum(t["net_usd"] for t in truth.orders.values())


def test_customers_match_source(truth_and_marts: tuple[Truth, dict[str, Any]]) -> None:
    truth, marts = truth_and_marts
    assert set(marts["customers"]) == set(truth.customers)
    expected = {cid: (c["order_count"], c["lifetime_net_paid_usd"]) for cid, c in truth.customers.items()}
    wrong = {
        cid: (marts["customers"][cid], exp) for cid, exp in expected.items() if marts["customers"][cid] != exp
    }
    assert not wrong, list(wrong.items())[:5]


def test_payments_and_items_match_source(truth_and_marts: tuple[Truth, dict[str, Any]]) -> None:
    truth, marts = truth_and_marts
    count, paid, refunded = marts["payments"]
    assert count == truth.payments_count
    assert paid == truth.payments_usd
    assert refunded == truth.refunds_usd
    assert marts["order_items"] == truth.order_items_count


def test_daily_revenue_matches_source(truth_and_marts: tuple[Truth, dict[str, Any]]) -> None:
    truth, marts = truth_and_marts
    assert marts["revenue"] == truth.revenue_by_day
    assert sum(marts["revenue"].values(), Decimal(0)) > 0


def test_cohorts_and_funnel_match_source(truth_and_marts: tuple[Truth, dict[str, Any]]) -> None:
    truth, marts = truth_and_marts
    assert marts["cohorts"] == truth.cohorts
    assert marts["funnel"] == (truth.sessions, truth.order_sessions)
