"""What the simulator must remember between changes, loaded once from the service files.

Pools of ids by lifecycle stage let each change pick its subject in O(1) without scanning tables, and
the in-memory price histories let a new order be priced exactly as ``price_history`` will say it was at
placement time. Everything is loaded in key order so two simulators on identical data start identical.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import orjson

from services.generator.catalog import Product
from services.store.records import iter_docs, max_key
from services.store.timefmt import parse_us

ORDER_STAGES = ("placed", "paid", "shipped", "delivered")


class Pool:
    """A set of ids with deterministic O(1) random pick-and-remove (swap with last, pop)."""

    def __init__(self, ids: list[int] | None = None) -> None:
        self.items: list[int] = list(ids or [])
        self.index: dict[int, int] = {item: i for i, item in enumerate(self.items)}

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: int) -> None:
        if item not in self.index:
            self.index[item] = len(self.items)
            self.items.append(item)

    def remove(self, item: int) -> None:
        position = self.index.pop(item)
        last = self.items.pop()
        if position < len(self.items):
            self.items[position] = last
            self.index[last] = position

    def pick(self, rng: random.Random) -> int:
        return self.items[rng.randrange(len(self.items))]

    def take(self, rng: random.Random) -> int:
        item = self.pick(rng)
        self.remove(item)
        return item


@dataclass
class SimState:
    """Pools, next ids and time floors for one simulator."""

    active_customers: Pool
    active_products: Pool
    orders_by_stage: dict[str, Pool]
    products: dict[int, Product]
    product_docs: dict[int, dict[str, Any]]
    next_ids: dict[str, int]
    clock_floor_us: int  # latest timestamp anywhere in the data: "now" never goes below it
    late_floor_us: int  # latest order/customer change when loaded: late stamps never go below it
    customer_last_order_us: dict[int, int] = field(default_factory=dict)
    product_last_order_us: dict[int, int] = field(default_factory=dict)


def _max_text(con: sqlite3.Connection, table: str, column: str) -> int:
    row = con.execute(f"SELECT MAX({column}) FROM {table}").fetchone()
    return parse_us(row[0]) if row and row[0] else 0


def _latest_event_us(con: sqlite3.Connection) -> int:
    """Latest ``occurred_at`` among the newest events: ``occurred_at`` has no index (a full scan of a
    multi-GB table at scale 20), and it only ever lags ids by a late commit's few seconds."""
    row = con.execute(
        "SELECT MAX(occurred_at) FROM (SELECT occurred_at FROM events ORDER BY event_id DESC LIMIT 10000)"
    ).fetchone()
    return parse_us(row[0]) if row and row[0] else 0


def load_state(cons: dict[str, sqlite3.Connection]) -> SimState:
    """Read pools, products and id counters from the five open service files."""
    customers, catalog, orders = cons["customers"], cons["catalog"], cons["orders"]
    active = [
        r[0]
        for r in customers.execute(
            "SELECT customer_id FROM customers WHERE deleted_at IS NULL ORDER BY customer_id"
        )
    ]
    meta = dict(customers.execute("SELECT key, value FROM meta").fetchall())
    if "max_address_id" in meta:
        max_address = int(meta["max_address_id"])
    else:
        max_address = max(
            (a["address_id"] for doc in iter_docs(customers, "customers") for a in doc["addresses"]),
            default=0,
        )
    history: dict[int, list[tuple[int, int]]] = {}
    for product_id, price, valid_from in catalog.execute(
        "SELECT product_id, price_minor, valid_from FROM price_history ORDER BY product_id, valid_from"
    ):
        history.setdefault(product_id, []).append((parse_us(valid_from), price))
    products: dict[int, Product] = {}
    docs: dict[int, dict[str, Any]] = {}
    for doc in iter_docs(catalog, "products"):
        pid = doc["product_id"]
        docs[pid] = doc
        products[pid] = Product(
            pid,
            doc["sku"],
            doc["name"],
            doc["category"],
            parse_us(doc["created_at"]),
            None if doc["active"] else parse_us(doc["updated_at"]),
            history.get(pid) or [(parse_us(doc["created_at"]), doc["price_minor"])],
        )
    stages: dict[str, list[int]] = {stage: [] for stage in ORDER_STAGES}
    for order_id, status in orders.execute(
        "SELECT order_id, status FROM orders WHERE status IN ('placed', 'paid', 'shipped', 'delivered') "
        "ORDER BY order_id"
    ):
        stages[status].append(order_id)
    next_ids = {
        "customer": max(
            max_key(customers, "customers", "customer_id"), max_key(customers, "deletions", "customer_id")
        )
        + 1,
        "address": max_address + 1,
        "order": max_key(orders, "orders", "order_id") + 1,
        "payment": max_key(cons["payments"], "payments", "payment_id") + 1,
        "refund": max_key(cons["payments"], "refunds", "refund_id") + 1,
        "event": max_key(cons["events"], "events", "event_id") + 1,
    }
    late_floor = max(
        _max_text(orders, "orders", "updated_at"),
        _max_text(customers, "customers", "updated_at"),
        _max_text(catalog, "products", "updated_at"),
        _max_text(catalog, "price_history", "valid_from"),
    )
    floor = max(
        late_floor,
        _max_text(customers, "deletions", "deleted_at"),
        _max_text(cons["payments"], "payments", "updated_at"),
        _max_text(cons["payments"], "refunds", "updated_at"),
        _latest_event_us(cons["events"]),
    )
    return SimState(
        active_customers=Pool(active),
        active_products=Pool([pid for pid, doc in docs.items() if doc["active"]]),
        orders_by_stage={stage: Pool(ids) for stage, ids in stages.items()},
        products=products,
        product_docs=docs,
        next_ids=next_ids,
        clock_floor_us=floor,
        late_floor_us=late_floor,
    )


def doc_of(con: sqlite3.Connection, table: str, key_column: str, key: int) -> dict[str, Any]:
    """Fetch one record that must exist (the pools only hold live ids)."""
    row = con.execute(f"SELECT doc FROM {table} WHERE {key_column} = ?", (key,)).fetchone()
    if row is None:
        raise LookupError(f"{table} {key} vanished: another writer is changing the same data")
    return orjson.loads(row[0])
