"""The SQLite layout of each service file (docs/contracts.md, "Service databases").

Tables are created without secondary indexes so the generator can bulk-load first and index afterwards
(several times faster than maintaining B-trees row by row); ``INDEXES`` is applied by ``create_indexes``.
"""

from __future__ import annotations

SERVICES = ("customers", "catalog", "orders", "payments", "events")

_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)"

TABLES: dict[str, tuple[str, ...]] = {
    "customers": (
        "CREATE TABLE IF NOT EXISTS customers (customer_id INTEGER PRIMARY KEY, updated_at TEXT NOT NULL, "
        "deleted_at TEXT, doc BLOB NOT NULL)",
        "CREATE TABLE IF NOT EXISTS deletions (customer_id INTEGER PRIMARY KEY, deleted_at TEXT NOT NULL)",
        _META,
    ),
    "catalog": (
        "CREATE TABLE IF NOT EXISTS products (product_id INTEGER PRIMARY KEY, updated_at TEXT NOT NULL, "
        "doc BLOB NOT NULL)",
        "CREATE TABLE IF NOT EXISTS categories (category_id INTEGER PRIMARY KEY, doc BLOB NOT NULL)",
        "CREATE TABLE IF NOT EXISTS price_history (product_id INTEGER NOT NULL, "
        "price_minor INTEGER NOT NULL, currency TEXT NOT NULL, valid_from TEXT NOT NULL)",
        _META,
    ),
    "orders": (
        "CREATE TABLE IF NOT EXISTS orders (order_id INTEGER PRIMARY KEY, customer_id INTEGER, status TEXT, "
        "updated_at TEXT NOT NULL, doc BLOB NOT NULL)",
        _META,
    ),
    "payments": (
        "CREATE TABLE IF NOT EXISTS payments (payment_id INTEGER PRIMARY KEY, order_id INTEGER, "
        "updated_at TEXT NOT NULL, doc BLOB NOT NULL)",
        "CREATE TABLE IF NOT EXISTS refunds (refund_id INTEGER PRIMARY KEY, order_id INTEGER, "
        "updated_at TEXT NOT NULL, doc BLOB NOT NULL)",
        _META,
    ),
    "events": (
        "CREATE TABLE IF NOT EXISTS events (event_id INTEGER PRIMARY KEY, occurred_at TEXT NOT NULL, "
        "doc BLOB NOT NULL)",
        _META,
    ),
}

INDEXES: dict[str, tuple[str, ...]] = {
    "customers": (
        "CREATE INDEX IF NOT EXISTS ix_customers_updated ON customers (updated_at, customer_id)",
        "CREATE INDEX IF NOT EXISTS ix_deletions_deleted ON deletions (deleted_at, customer_id)",
    ),
    "catalog": (
        "CREATE INDEX IF NOT EXISTS ix_products_updated ON products (updated_at)",
        "CREATE INDEX IF NOT EXISTS ix_price_history_product ON price_history (product_id, valid_from)",
    ),
    "orders": (
        "CREATE INDEX IF NOT EXISTS ix_orders_updated ON orders (updated_at, order_id)",
        "CREATE INDEX IF NOT EXISTS ix_orders_status ON orders (status, order_id)",
    ),
    "payments": (
        "CREATE INDEX IF NOT EXISTS ix_payments_updated ON payments (updated_at, payment_id)",
        "CREATE INDEX IF NOT EXISTS ix_payments_order ON payments (order_id)",
        "CREATE INDEX IF NOT EXISTS ix_refunds_updated ON refunds (updated_at, refund_id)",
        "CREATE INDEX IF NOT EXISTS ix_refunds_order ON refunds (order_id)",
    ),
    "events": (),
}
