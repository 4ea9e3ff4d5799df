"""The data generator: deterministic, scaled, realistically shaped and internally consistent.

Small scales keep this quick; every case reads the real SQLite files the services serve from.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sqlite3
from collections import Counter
from pathlib import Path

import orjson
import pytest

from services.generator import generate
from services.store import SERVICES, check_consistency, connect, db_path, get_meta
from services.store.money import convert_from_usd, currency_for_country
from services.store.records import DOC_TABLES

SCALE = 0.05
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def checksums(data_dir: Path) -> dict[str, str]:
    """sha256 per table over every stored row, in key order (docs, deletions, price history, meta seed)."""
    out: dict[str, str] = {}
    for table, spec in DOC_TABLES.items():
        con = connect(data_dir, spec.service, readonly=True)
        digest = hashlib.sha256()
        for (raw,) in con.execute(f"SELECT doc FROM {table} ORDER BY {spec.key}"):
            digest.update(raw)
        out[table] = digest.hexdigest()
        con.close()
    extra = {
        ("customers", "deletions"): "SELECT customer_id, deleted_at FROM deletions ORDER BY customer_id",
        ("catalog", "price_history"): "SELECT * FROM price_history ORDER BY product_id, valid_from",
    }
    for (service, table), sql in extra.items():
        con = connect(data_dir, service, readonly=True)
        out[table] = hashlib.sha256(repr(con.execute(sql).fetchall()).encode()).hexdigest()
        con.close()
    return out


def rows(data_dir: Path, service: str, sql: str) -> list[tuple]:
    con = connect(data_dir, service, readonly=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def docs(data_dir: Path, table: str) -> list[dict]:
    spec = DOC_TABLES[table]
    return [
        orjson.loads(r[0])
        for r in rows(data_dir, spec.service, f"SELECT doc FROM {table} ORDER BY {spec.key}")
    ]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, int]]]:
    """Four datasets: seed 7 twice, seed 8, and seed 7 at double scale."""
    base = tmp_path_factory.mktemp("generated")
    out = {}
    for name, scale, seed in (
        ("a", SCALE, 7),
        ("b", SCALE, 7),
        ("other_seed", SCALE, 8),
        ("double", 2 * SCALE, 7),
    ):
        out[name] = (base / name, generate(base / name, scale, seed))
    return out


def test_same_seed_and_scale_give_identical_data(datasets):
    assert checksums(datasets["a"][0]) == checksums(datasets["b"][0])


def test_a_different_seed_gives_different_data(datasets):
    a, other = checksums(datasets["a"][0]), checksums(datasets["other_seed"][0])
    differing = [t for t in a if a[t] != other[t] and t != "categories"]
    assert sorted(differing) == sorted(t for t in a if t != "categories")
    assert a["categories"] == other["categories"]  # the category tree is fixed by design


def test_returned_counts_match_the_files(datasets):
    data_dir, counts = datasets["a"]
    for table, spec in DOC_TABLES.items():
        assert rows(data_dir, spec.service, f"SELECT count(*) FROM {table}")[0][0] == counts[table], table
    assert rows(data_dir, "customers", "SELECT count(*) FROM deletions")[0][0] == counts["deletions"]
    assert rows(data_dir, "catalog", "SELECT count(*) FROM price_history")[0][0] == counts["price_history"]


def test_row_counts_follow_the_scale(datasets):
    small, double = datasets["a"][1], datasets["double"][1]
    assert small["customers"] + small["deletions"] == round(10_000 * SCALE)
    assert small["products"] == round(1_000 * SCALE)
    assert small["orders"] == round(50_000 * SCALE)
    assert 1.05 < small["payments"] / small["orders"] < 1.3  # failed attempts and split payments
    assert 8 < small["events"] / small["orders"] < 14
    for table in ("customers", "products", "orders", "payments", "events"):
        assert 1.7 < double[table] / small[table] < 2.3, table


def test_generated_data_keeps_the_consistency_rules(datasets):
    for name, (data_dir, _counts) in datasets.items():
        assert check_consistency(data_dir) == [], name


def test_files_use_wal_and_record_their_origin(datasets):
    data_dir, _ = datasets["a"]
    for service in SERVICES:
        con = sqlite3.connect(db_path(data_dir, service))
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        con.close()
        meta = get_meta(connect(data_dir, service, readonly=True))
        assert meta["seed"] == "7" and float(meta["scale"]) == SCALE
        assert meta["history_end"] == "2026-11-28T00:00:00.000000Z"


def test_records_have_the_contract_shape(datasets):
    data_dir, _ = datasets["a"]
    customer = docs(data_dir, "customers")[0]
    assert list(customer) == [
        "customer_id",
        "email",
        "first_name",
        "last_name",
        "phone",
        "country",
        "marketing_opt_in",
        "created_at",
        "updated_at",
        "deleted_at",
        "addresses",
    ]
    assert set(customer["addresses"][0]) == {
        "address_id",
        "kind",
        "line1",
        "line2",
        "city",
        "postal_code",
        "country",
        "is_default",
    }
    order = docs(data_dir, "orders")[0]
    assert set(order) == {
        "order_id",
        "customer_id",
        "status",
        "currency",
        "subtotal_minor",
        "discount_minor",
        "shipping_minor",
        "total_minor",
        "placed_at",
        "paid_at",
        "shipped_at",
        "delivered_at",
        "cancelled_at",
        "returned_at",
        "updated_at",
        "shipping_country",
        "items",
    }
    assert set(order["items"][0]) == {"line_id", "product_id", "sku", "quantity", "unit_price_minor"}
    event = docs(data_dir, "events")[0]
    assert set(event["context"]) == {"page", "referrer", "device", "country"}
    assert set(event["properties"]) == {
        "product_id",
        "sku",
        "quantity",
        "order_id",
        "value_minor",
        "currency",
    }
    product = docs(data_dir, "products")[0]
    assert re.fullmatch(r"SKU-\d{6}", product["sku"]) and product["currency"] == "USD"
    assert set(product["category"]) == {"category_id", "name", "department"}
    for table in ("customers", "orders", "payments", "refunds", "products", "events"):
        for doc in docs(data_dir, table)[:200]:
            for key in ("created_at", "updated_at", "placed_at", "paid_at", "occurred_at"):
                if doc.get(key) is not None:
                    assert TS.match(doc[key]), (table, key, doc[key])


def test_realistic_shape(datasets):
    data_dir, _ = datasets["double"]
    customers = docs(data_dir, "customers")
    orders = docs(data_dir, "orders")
    payments = docs(data_dir, "payments")
    # currency follows the shipping country; several countries and all three currencies appear
    assert all(o["currency"] == currency_for_country(o["shipping_country"]) for o in orders)
    assert {o["currency"] for o in orders} == {"USD", "EUR", "GBP"}
    assert len({c["country"] for c in customers}) >= 8
    # repeat buyers, skewed: the busiest tenth of buyers places far more than a tenth of orders
    per_customer = Counter(o["customer_id"] for o in orders)
    top = sum(n for _, n in per_customer.most_common(max(1, len(per_customer) // 10)))
    assert top > 0.3 * len(orders)
    # every lifecycle stage, failed attempts, split payments, soft and hard deletes
    assert {"placed", "paid", "shipped", "delivered", "cancelled", "returned"} <= {
        o["status"] for o in orders
    }
    assert any(p["status"] == "failed" and p["failure_reason"] for p in payments)
    assert Counter(p["order_id"] for p in payments if p["status"] == "succeeded").most_common(1)[0][1] == 2
    assert any(c["deleted_at"] for c in customers)
    assert rows(data_dir, "customers", "SELECT count(*) FROM deletions")[0][0] > 0
    # Q4 peak: November-December carry more orders per month than the rest of the year
    months = Counter(o["placed_at"][5:7] for o in orders)
    assert (months["11"] + months["12"]) / 2 > 1.2 * sum(months[m] for m in ("02", "03", "04", "05")) / 4
    # prices change over time and orders carry the price of their day
    changed = rows(
        data_dir, "catalog", "SELECT product_id FROM price_history GROUP BY product_id HAVING count(*) > 1"
    )
    assert changed
    usd_prices = Counter()
    for o in orders:
        if o["currency"] == "USD":
            for item in o["items"]:
                usd_prices[item["product_id"], item["unit_price_minor"]] += 1
    assert len({pid for pid, _ in usd_prices}) < len(usd_prices)  # some product sold at two prices


def test_events_are_ordered_and_include_sessions_without_orders(datasets):
    data_dir, _ = datasets["a"]
    events = docs(data_dir, "events")
    ids = [e["event_id"] for e in events]
    assert ids == list(range(1, len(ids) + 1))
    stamps = [e["occurred_at"] for e in events]
    assert stamps == sorted(stamps)
    sessions_with_order = {e["session_id"] for e in events if e["event_type"] == "order_placed"}
    carts = {e["session_id"] for e in events if e["event_type"] == "add_to_cart"}
    assert carts - sessions_with_order, "no abandoned carts"
    assert {e["session_id"] for e in events} - carts, "no browse-only sessions"
    assert any(e["customer_id"] is None for e in events)
    placed = {e["properties"]["order_id"] for e in events if e["event_type"] == "order_placed"}
    assert placed == {o["order_id"] for o in docs(data_dir, "orders")}


def test_order_prices_come_from_the_price_history(datasets):
    data_dir, _ = datasets["a"]
    history: dict[int, list[tuple[str, int]]] = {}
    for pid, price, valid_from in rows(
        data_dir,
        "catalog",
        "SELECT product_id, price_minor, valid_from FROM price_history ORDER BY valid_from",
    ):
        history.setdefault(pid, []).append((valid_from, price))
    for order in docs(data_dir, "orders")[:500]:
        for item in order["items"]:
            price = [p for at, p in history[item["product_id"]] if at <= order["placed_at"]][-1]
            assert item["unit_price_minor"] == convert_from_usd(price, order["currency"])


def test_the_consistency_check_catches_broken_data(datasets, tmp_path):
    """The check must be able to fail: tamper with a copy and expect each rule to fire."""
    broken = tmp_path / "broken"
    shutil.copytree(datasets["a"][0], broken)
    orders = connect(broken, "orders")
    order = orjson.loads(
        orders.execute("SELECT doc FROM orders WHERE status = 'delivered' LIMIT 1").fetchone()[0]
    )
    order["total_minor"] += 1
    orders.execute("UPDATE orders SET doc = ? WHERE order_id = ?", (orjson.dumps(order), order["order_id"]))
    orders.execute("UPDATE orders SET status = 'shipped' WHERE order_id = (SELECT MIN(order_id) FROM orders)")
    orders.close()
    events = connect(broken, "events")
    events.execute(
        "DELETE FROM events WHERE event_id = (SELECT MIN(event_id) FROM events "
        'WHERE CAST(doc AS TEXT) LIKE \'%"event_type":"order_placed"%\')'
    )
    events.close()
    payments = connect(broken, "payments")
    refund = orjson.loads(payments.execute("SELECT doc FROM refunds LIMIT 1").fetchone()[0])
    refund["refund_id"], refund["order_id"] = 999_999, order["order_id"]
    payments.execute(
        "INSERT INTO refunds VALUES (?, ?, ?, ?)",
        (999_999, order["order_id"], refund["updated_at"], orjson.dumps(refund)),
    )
    payments.close()
    fired = {v.split(":")[0] for v in check_consistency(broken)}
    assert {
        "order-money",
        "payment-sum",
        "column-doc",
        "order-event",
        "refund-status",
        "refund-payment",
    } <= fired


def test_generate_refuses_to_overwrite_existing_data(datasets):
    with pytest.raises(FileExistsError):
        generate(datasets["a"][0], SCALE, 7)


def test_generation_leaves_only_the_five_files(datasets):
    data_dir, _ = datasets["a"]
    names = [p.name for p in data_dir.iterdir() if not p.name.endswith(("-wal", "-shm"))]  # readers' sidecars
    assert sorted(names) == sorted(f"{s}.sqlite" for s in SERVICES)


def test_command_line_generates_checks_and_refuses_to_overwrite(tmp_path, capsys):
    from services.generator.__main__ import main

    target = tmp_path / "cli"
    assert main(["--data-dir", str(target), "--scale", "0.01", "--seed", "3", "--check"]) == 0
    assert main(["--data-dir", str(target), "--scale", "0.01", "--seed", "3"]) == 2
    assert "already present" in capsys.readouterr().err
