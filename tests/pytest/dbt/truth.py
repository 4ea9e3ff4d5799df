"""Ground truth for the marts, computed in plain Python from the services' own SQLite files and the
FX seed, without SQL or dbt: if a model and this module agree to the cent, the model is right (they
share no code). Conventions mirrored from docs/dbt.md: every amount of an order converts at the rate
of its placement day (latest seed rate on or before it), each payment/refund/line is converted and
rounded to cents (half away from zero) before summing.
"""

from __future__ import annotations

import bisect
import csv
import sqlite3
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import orjson

from tests.pytest.support.dbt_world import REPO

CENT = Decimal("0.01")
# the marts' one definition of a paid order: it reached `paid` (paid_at set), returned ones included;
# "kept" = paid and not returned (statuses paid, shipped, delivered)
KEPT_STATUSES = {"paid", "shipped", "delivered"}
SESSION_GAP = timedelta(minutes=30)


def docs(data_dir: Path, service: str, table: str) -> list[dict[str, Any]]:
    """Every record of a service table, decoded from the `doc` column exactly as served."""
    con = sqlite3.connect(f"file:{data_dir / (service + '.sqlite')}?mode=ro", uri=True)
    try:
        return [orjson.loads(row[0]) for row in con.execute(f"select doc from {table}")]
    finally:
        con.close()


def erased_ids(data_dir: Path) -> set[int]:
    con = sqlite3.connect(f"file:{data_dir / 'customers.sqlite'}?mode=ro", uri=True)
    try:
        return {row[0] for row in con.execute("select customer_id from deletions")}
    finally:
        con.close()


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)


class Fx:
    """The FX seed with an as-of lookup: the latest rate on or before a day."""

    def __init__(self, path: Path = REPO / "seeds" / "fx_rates_daily.csv") -> None:
        series: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
        with path.open() as fh:
            for row in csv.DictReader(fh):
                series[row["currency"]].append(
                    (date.fromisoformat(row["rate_date"]), Decimal(row["usd_per_unit"]))
                )
        self.days = {c: [d for d, _ in sorted(s)] for c, s in series.items()}
        self.rates = {c: [r for _, r in sorted(s)] for c, s in series.items()}

    def rate(self, currency: str, day: date) -> Decimal:
        i = bisect.bisect_right(self.days[currency], day) - 1
        assert i >= 0, f"no {currency} rate on or before {day}"
        return self.rates[currency][i]


def usd(minor: int, rate: Decimal) -> Decimal:
    """Minor units (2-decimal currencies: USD, EUR, GBP) → USD cents at ``rate``, half away from zero."""
    return (Decimal(minor) / 100 * rate).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class Truth:
    """What the marts must contain, keyed like the marts."""

    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    payments_count: int = 0
    payments_usd: Decimal = Decimal(0)
    refunds_usd: Decimal = Decimal(0)
    order_items_count: int = 0
    # kept gross line value per placement day that has a paid order
    revenue_by_day: dict[date, Decimal] = field(default_factory=dict)
    # fct_daily_revenue's grain: (placement day, shipping country, category) -> its measures
    daily_revenue: dict[tuple[date, str, str], dict[str, Any]] = field(default_factory=dict)
    # fct_orders summed per (placement day, shipping country): orders and money
    orders_by_day_country: dict[tuple[date, str], dict[str, Any]] = field(default_factory=dict)
    cohorts: dict[tuple[date, date], int] = field(default_factory=dict)
    sessions: int = 0
    order_sessions: int = 0


def month(d: datetime) -> date:
    return date(d.year, d.month, 1)


def _add_revenue_lines(truth: Truth, order: dict[str, Any], rate: Decimal, category: dict[int, str]) -> None:
    """A paid order's lines into fct_daily_revenue's cells (day, country, category)."""
    placed = ts(order["placed_at"]).date()
    returned = order["returned_at"] is not None
    for item in order["items"]:
        key = (placed, order["shipping_country"].upper(), category.get(item["product_id"], "Unknown"))
        cell = truth.daily_revenue.setdefault(
            key,
            {
                "paid_orders": set(),
                "returned_orders": set(),
                "paid_units": 0,
                "paid_gross_usd": Decimal(0),
                "returned_gross_usd": Decimal(0),
                "kept_gross_usd": Decimal(0),
            },
        )
        line = usd(item["quantity"] * item["unit_price_minor"], rate)
        cell["paid_orders"].add(order["order_id"])
        cell["paid_units"] += item["quantity"]
        cell["paid_gross_usd"] += line
        kept = truth.revenue_by_day.setdefault(placed, Decimal(0))  # a day with only returns keeps 0
        if returned:
            cell["returned_orders"].add(order["order_id"])
            cell["returned_gross_usd"] += line
        else:
            cell["kept_gross_usd"] += line
            truth.revenue_by_day[placed] = kept + line


def compute(data_dir: Path) -> Truth:
    """The expected marts for the services' current data."""
    fx = Fx()
    truth = Truth()
    erased = erased_ids(data_dir)
    category = {p["product_id"]: p["category"]["name"] for p in docs(data_dir, "catalog", "products")}
    order_rate: dict[int, Decimal] = {}
    for o in docs(data_dir, "orders", "orders"):
        placed = ts(o["placed_at"])
        rate = fx.rate(o["currency"], placed.date())
        order_rate[o["order_id"]] = rate
        truth.orders[o["order_id"]] = {
            "customer_id": None if o["customer_id"] in erased else o["customer_id"],
            "status": o["status"],
            "placed_at": placed,
            "country": o["shipping_country"].upper(),
            "is_paid": o["paid_at"] is not None,
            "total_usd": usd(o["total_minor"], rate),
            "paid_usd": Decimal(0),
            "refunded_usd": Decimal(0),
        }
        truth.order_items_count += len(o["items"])
        if o["paid_at"] is not None:
            assert (o["status"] in KEPT_STATUSES) == (o["returned_at"] is None), o["order_id"]
            _add_revenue_lines(truth, o, rate, category)
    for p in docs(data_dir, "payments", "payments"):
        truth.payments_count += 1
        amount = usd(p["amount_minor"], order_rate[p["order_id"]])
        truth.payments_usd += amount
        if p["status"] == "succeeded":
            truth.orders[p["order_id"]]["paid_usd"] += amount
    for r in docs(data_dir, "payments", "refunds"):
        amount = usd(r["amount_minor"], order_rate[r["order_id"]])
        truth.refunds_usd += amount
        truth.orders[r["order_id"]]["refunded_usd"] += amount
    for o in truth.orders.values():
        o["net_usd"] = o["paid_usd"] - o["refunded_usd"]
        cell = truth.orders_by_day_country.setdefault(
            (o["placed_at"].date(), o["country"]),
            {"orders": 0, "total_usd": Decimal(0), "paid_usd": Decimal(0), "refunded_usd": Decimal(0)},
        )
        cell["orders"] += 1
        for money in ("total_usd", "paid_usd", "refunded_usd"):
            cell[money] += o[money]

    for c in docs(data_dir, "customers", "customers"):
        if c["customer_id"] in erased:
            continue
        truth.customers[c["customer_id"]] = {
            "order_count": 0,
            "paid_order_count": 0,
            "lifetime_net_paid_usd": Decimal(0),
        }
    active_months: dict[int, set[date]] = defaultdict(set)
    for o in truth.orders.values():
        cid = o["customer_id"]
        if cid is None:
            continue
        truth.customers[cid]["order_count"] += 1
        truth.customers[cid]["paid_order_count"] += int(o["is_paid"])
        truth.customers[cid]["lifetime_net_paid_usd"] += o["net_usd"]
        if o["status"] != "cancelled":
            active_months[cid].add(month(o["placed_at"]))
    for months in active_months.values():
        first = min(months)
        for m in months:
            truth.cohorts[(first, m)] = truth.cohorts.get((first, m), 0) + 1

    by_session: dict[str, list[tuple[datetime, int, str]]] = defaultdict(list)
    for e in docs(data_dir, "events", "events"):
        by_session[e["session_id"]].append((ts(e["occurred_at"]), e["event_id"], e["event_type"]))
    for events in by_session.values():
        events.sort()
        visits: list[list[str]] = []
        last: datetime | None = None
        for at, _, kind in events:
            if last is None or at - last > SESSION_GAP:
                visits.append([])
            visits[-1].append(kind)
            last = at
        truth.sessions += len(visits)
        truth.order_sessions += sum(1 for v in visits if "order_placed" in v)
    return truth
