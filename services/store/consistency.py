"""``check_consistency(data_dir)``: the contract's consistency rules, checked against the files.

Used by the generator's and simulator's tests (and handy after any manual change): it reads the five
service files read-only and returns human-readable violations, empty when the data is sound. It also
checks that every indexed column agrees with its doc, since the apps select by one and serve the other.
"""

from __future__ import annotations

import sqlite3
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import orjson

from services.store.db import connect, db_path
from services.store.money import CURRENCIES, convert_from_usd
from services.store.records import DOC_TABLES
from services.store.schema import SERVICES

MAX_PER_RULE = 50
STAGES = ("placed", "paid", "shipped", "delivered")
PAID_STATUSES = frozenset({"paid", "shipped", "delivered", "returned"})


class Violations:
    """Collects messages, keeping at most ``MAX_PER_RULE`` per rule and counting the rest."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.per_rule: dict[str, int] = defaultdict(int)

    def add(self, rule: str, message: str) -> None:
        self.per_rule[rule] += 1
        if self.per_rule[rule] <= MAX_PER_RULE:
            self.messages.append(f"{rule}: {message}")

    def result(self) -> list[str]:
        extra = [
            f"{rule}: … and {n - MAX_PER_RULE} more" for rule, n in self.per_rule.items() if n > MAX_PER_RULE
        ]
        return self.messages + extra


def _rows(con: sqlite3.Connection, table: str) -> Iterator[tuple[Any, ...]]:
    """Yield ``(key, *indexed columns, parsed doc)`` in key order."""
    spec = DOC_TABLES[table]
    cols = ", ".join((spec.key, *spec.columns, "doc"))
    cur = con.execute(f"SELECT {cols} FROM {table} ORDER BY {spec.key}")
    while batch := cur.fetchmany(5000):
        for row in batch:
            yield (*row[:-1], orjson.loads(row[-1]))


def _check_columns(v: Violations, table: str, row: tuple[Any, ...]) -> dict[str, Any]:
    spec = DOC_TABLES[table]
    doc = row[-1]
    for name, value in zip((spec.key, *spec.columns), row[:-1], strict=True):
        if doc.get(name) != value:
            v.add("column-doc", f"{table} {row[0]}: column {name}={value!r} but doc has {doc.get(name)!r}")
    return doc


def check_consistency(data_dir: Path | str) -> list[str]:
    """Check all consistency rules over the service files in ``data_dir``; returns the violations."""
    v = Violations()
    missing = [s for s in SERVICES if not db_path(data_dir, s).exists()]
    if missing:
        return [f"files: missing service files for {', '.join(missing)}"]
    with ExitStack() as stack:
        cons = {s: connect(data_dir, s, readonly=True) for s in SERVICES}
        for con in cons.values():
            stack.callback(con.close)
        created, erased = _check_customers(v, cons["customers"])
        prices = _check_catalog(v, cons["catalog"])
        placed_event_orders = _check_events(v, cons["events"])
        payments, refunds = _load_payments(v, cons["payments"])
        _check_orders(v, cons["orders"], created, erased, prices, payments, refunds, placed_event_orders)
    return v.result()


def _check_customers(v: Violations, con: sqlite3.Connection) -> tuple[dict[int, str], dict[int, str]]:
    created: dict[int, str] = {}
    address_ids: set[int] = set()
    emails: set[str] = set()
    for row in _rows(con, "customers"):
        doc = _check_columns(v, "customers", row)
        cid = doc["customer_id"]
        created[cid] = doc["created_at"]
        if doc["updated_at"] < doc["created_at"]:
            v.add("customer-times", f"customer {cid} updated_at before created_at")
        if doc["deleted_at"] is not None and doc["updated_at"] < doc["deleted_at"]:
            v.add("customer-times", f"customer {cid} updated_at before deleted_at")
        if doc["email"] in emails:
            v.add("customer-email", f"customer {cid} reuses email {doc['email']!r}")
        emails.add(doc["email"])
        if not 1 <= len(doc["addresses"]) <= 3:
            v.add("customer-addresses", f"customer {cid} has {len(doc['addresses'])} addresses")
        defaults = [a for a in doc["addresses"] if a["kind"] == "shipping" and a["is_default"]]
        if len(defaults) != 1:
            v.add("customer-addresses", f"customer {cid} has {len(defaults)} default shipping addresses")
        for address in doc["addresses"]:
            if address["address_id"] in address_ids:
                v.add("customer-addresses", f"address id {address['address_id']} used twice")
            address_ids.add(address["address_id"])
    erased = dict(con.execute("SELECT customer_id, deleted_at FROM deletions").fetchall())
    for cid in erased.keys() & created.keys():
        v.add("erasure", f"customer {cid} is in deletions but still present")
    return created, erased


def _check_catalog(v: Violations, con: sqlite3.Connection) -> dict[int, tuple[list[str], list[int]]]:
    history: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for product_id, price, currency, valid_from in con.execute(
        "SELECT product_id, price_minor, currency, valid_from FROM price_history "
        "ORDER BY product_id, valid_from"
    ):
        if currency != "USD":
            v.add("price-history", f"product {product_id} priced in {currency}")
        history[product_id].append((valid_from, price))
    prices = {pid: ([t for t, _ in rows], [p for _, p in rows]) for pid, rows in history.items()}
    for row in _rows(con, "products"):
        doc = _check_columns(v, "products", row)
        pid = doc["product_id"]
        if pid not in prices:
            v.add("price-history", f"product {pid} has no price history")
        elif prices[pid][1][-1] != doc["price_minor"]:
            v.add(
                "price-history", f"product {pid} price {doc['price_minor']} is not its latest history price"
            )
        if doc["updated_at"] < doc["created_at"]:
            v.add("product-times", f"product {pid} updated_at before created_at")
    return prices


def _check_events(v: Violations, con: sqlite3.Connection) -> set[int]:
    placed: set[int] = set()
    for row in _rows(con, "events"):
        doc = _check_columns(v, "events", row)
        if doc["event_type"] == "order_placed":
            order_id = doc["properties"]["order_id"]
            if order_id is None:
                v.add("events", f"order_placed event {doc['event_id']} without order_id")
            placed.add(order_id)
    return placed


def _load_payments(
    v: Violations, con: sqlite3.Connection
) -> tuple[dict[int, list[dict[str, Any]]], dict[int, list[dict[str, Any]]]]:
    payments: dict[int, list[dict[str, Any]]] = defaultdict(list)
    refunds: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in _rows(con, "payments"):
        doc = _check_columns(v, "payments", row)
        payments[doc["order_id"]].append(doc)
    for row in _rows(con, "refunds"):
        doc = _check_columns(v, "refunds", row)
        refunds[doc["order_id"]].append(doc)
    return payments, refunds


def _check_orders(
    v: Violations,
    con: sqlite3.Connection,
    created: dict[int, str],
    erased: dict[int, str],
    prices: dict[int, tuple[list[str], list[int]]],
    payments: dict[int, list[dict[str, Any]]],
    refunds: dict[int, list[dict[str, Any]]],
    placed_events: set[int],
) -> None:
    seen: set[int] = set()
    for row in _rows(con, "orders"):
        order = _check_columns(v, "orders", row)
        oid = order["order_id"]
        seen.add(oid)
        _check_order_customer(v, order, created, erased)
        _check_order_money(v, order, prices)
        _check_order_stages(v, order)
        _check_order_payments(v, order, payments.get(oid, []), refunds.get(oid, []))
        if oid not in placed_events:
            v.add("order-event", f"order {oid} has no order_placed event")
    for oid in (payments.keys() | refunds.keys()) - seen:
        v.add("orphan-payment", f"payments/refunds for unknown order {oid}")
    for oid in placed_events - seen:
        v.add("order-event", f"order_placed event for unknown order {oid}")


def _check_order_customer(
    v: Violations, order: dict[str, Any], created: dict[int, str], erased: dict[int, str]
) -> None:
    cid, placed = order["customer_id"], order["placed_at"]
    if cid in created:
        if created[cid] >= placed:
            v.add("order-customer", f"order {order['order_id']} placed before customer {cid} was created")
    elif cid in erased:
        if erased[cid] < placed:
            v.add("order-customer", f"order {order['order_id']} placed after customer {cid} was erased")
    else:
        v.add("order-customer", f"order {order['order_id']} has unknown customer {cid}")


def _check_order_money(
    v: Violations, order: dict[str, Any], prices: dict[int, tuple[list[str], list[int]]]
) -> None:
    oid, currency = order["order_id"], order["currency"]
    if currency not in CURRENCIES:
        v.add("order-money", f"order {oid} currency {currency!r}")
        return
    subtotal = 0
    for item in order["items"]:
        subtotal += item["unit_price_minor"] * item["quantity"]
        history = prices.get(item["product_id"])
        if history is None:
            v.add(
                "order-items", f"order {oid} line {item['line_id']} has unknown product {item['product_id']}"
            )
            continue
        index = bisect_right(history[0], order["placed_at"]) - 1
        if index < 0:
            v.add("order-items", f"order {oid} line {item['line_id']}: product not priced yet at placement")
            continue
        expected = convert_from_usd(history[1][index], currency)
        if item["unit_price_minor"] != expected:
            v.add(
                "order-items",
                f"order {oid} line {item['line_id']}: unit price {item['unit_price_minor']} != {expected}",
            )
    if not order["items"]:
        v.add("order-items", f"order {oid} has no lines")
    if subtotal != order["subtotal_minor"]:
        v.add("order-money", f"order {oid} subtotal {order['subtotal_minor']} != lines {subtotal}")
    total = order["subtotal_minor"] - order["discount_minor"] + order["shipping_minor"]
    if total != order["total_minor"]:
        v.add("order-money", f"order {oid} total {order['total_minor']} != {total}")


def _check_order_stages(v: Violations, order: dict[str, Any]) -> None:
    oid, status = order["order_id"], order["status"]
    reached = {
        "placed": ["placed"],
        "paid": ["placed", "paid"],
        "shipped": ["placed", "paid", "shipped"],
        "delivered": ["placed", "paid", "shipped", "delivered"],
        "returned": ["placed", "paid", "shipped", "delivered", "returned"],
        "cancelled": ["placed", "cancelled"],
    }.get(status)
    if reached is None:
        v.add("order-status", f"order {oid} has unknown status {status!r}")
        return
    for stage in ("placed", "paid", "shipped", "delivered", "cancelled", "returned"):
        value = order[f"{stage}_at"]
        if (stage in reached) != (value is not None):
            v.add("order-status", f"order {oid} ({status}) has {stage}_at={value!r}")
    stamps = [order[f"{stage}_at"] for stage in reached]
    if any(s is None for s in stamps):
        return
    if stamps != sorted(stamps):
        v.add("order-times", f"order {oid} status timestamps not monotone: {stamps}")
    if order["updated_at"] < stamps[-1]:
        v.add("order-times", f"order {oid} updated_at before its last status change")


def _check_order_payments(
    v: Violations, order: dict[str, Any], payments: list[dict[str, Any]], refunds: list[dict[str, Any]]
) -> None:
    oid, status = order["order_id"], order["status"]
    succeeded = [p for p in payments if p["status"] == "succeeded"]
    paid = sum(p["amount_minor"] for p in succeeded)
    for p in payments:
        if p["currency"] != order["currency"]:
            v.add(
                "payment-currency",
                f"payment {p['payment_id']} in {p['currency']} for a {order['currency']} order",
            )
        if p["created_at"] < order["placed_at"]:
            v.add("payment-times", f"payment {p['payment_id']} before order {oid} was placed")
        if p["updated_at"] < p["created_at"]:
            v.add("payment-times", f"payment {p['payment_id']} updated_at before created_at")
    if status in PAID_STATUSES:
        if paid != order["total_minor"]:
            v.add("payment-sum", f"order {oid} ({status}) total {order['total_minor']} but paid {paid}")
    elif succeeded:
        v.add("payment-sum", f"order {oid} ({status}) has {len(succeeded)} succeeded payments")
    if refunds and status != "returned":
        v.add("refund-status", f"order {oid} ({status}) has refunds")
    refunded = sum(r["amount_minor"] for r in refunds)
    if refunded > paid:
        v.add("refund-sum", f"order {oid} refunded {refunded} of {paid} paid")
    succeeded_ids = {p["payment_id"] for p in succeeded}
    for r in refunds:
        if r["payment_id"] not in succeeded_ids:
            v.add("refund-payment", f"refund {r['refund_id']} points at payment {r['payment_id']}")
        if r["currency"] != order["currency"]:
            v.add("refund-currency", f"refund {r['refund_id']} in {r['currency']}")
