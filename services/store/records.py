"""Writing records: the indexed key columns and the served ``doc`` bytes always come from one dict.

Every write path (generator bulk load, simulator change) goes through ``put_docs`` so a page served by an
app can never disagree with the column it was selected by. Docs are stored as orjson bytes, exactly as the
apps serve them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True)
class DocTable:
    """A doc-bearing table: its service file, key column and how its indexed columns derive from the doc."""

    service: str
    table: str
    key: str
    columns: tuple[str, ...]  # indexed columns after the key, each taken from the doc field of the same name

    @property
    def upsert_sql(self) -> str:
        names = (self.key, *self.columns, "doc")
        marks = ", ".join("?" for _ in names)
        return f"INSERT OR REPLACE INTO {self.table} ({', '.join(names)}) VALUES ({marks})"

    def row(self, doc: dict[str, Any]) -> tuple[Any, ...]:
        return (doc[self.key], *(doc[c] for c in self.columns), orjson.dumps(doc))


DOC_TABLES: dict[str, DocTable] = {
    t.table: t
    for t in (
        DocTable("customers", "customers", "customer_id", ("updated_at", "deleted_at")),
        DocTable("catalog", "products", "product_id", ("updated_at",)),
        DocTable("catalog", "categories", "category_id", ()),
        DocTable("orders", "orders", "order_id", ("customer_id", "status", "updated_at")),
        DocTable("payments", "payments", "payment_id", ("order_id", "updated_at")),
        DocTable("payments", "refunds", "refund_id", ("order_id", "updated_at")),
        DocTable("events", "events", "event_id", ("occurred_at",)),
    )
}


def put_docs(con: sqlite3.Connection, table: str, docs: Iterable[dict[str, Any]]) -> int:
    """Insert or replace records in ``table``; returns how many were written."""
    spec = DOC_TABLES[table]
    rows = [spec.row(doc) for doc in docs]
    if rows:
        con.executemany(spec.upsert_sql, rows)
    return len(rows)


def get_doc(con: sqlite3.Connection, table: str, key: int) -> dict[str, Any] | None:
    """One record by primary key, parsed; None when absent."""
    spec = DOC_TABLES[table]
    row = con.execute(f"SELECT doc FROM {table} WHERE {spec.key} = ?", (key,)).fetchone()
    return None if row is None else orjson.loads(row[0])


def iter_docs(con: sqlite3.Connection, table: str, batch: int = 5000) -> Iterator[dict[str, Any]]:
    """All records of ``table`` in key order, parsed (streams; fine for checks over large files)."""
    spec = DOC_TABLES[table]
    cur = con.execute(f"SELECT doc FROM {table} ORDER BY {spec.key}")
    while rows := cur.fetchmany(batch):
        for (raw,) in rows:
            yield orjson.loads(raw)


def erase_customers(con: sqlite3.Connection, erasures: Iterable[tuple[int, str]]) -> int:
    """Hard-delete customers: drop their row and record ``(customer_id, deleted_at)`` in ``deletions``."""
    rows = list(erasures)
    con.executemany("DELETE FROM customers WHERE customer_id = ?", [(cid,) for cid, _ in rows])
    con.executemany("INSERT OR REPLACE INTO deletions (customer_id, deleted_at) VALUES (?, ?)", rows)
    return len(rows)


def add_price_history(con: sqlite3.Connection, rows: Iterable[tuple[int, int, str, str]]) -> int:
    """Append ``(product_id, price_minor, currency, valid_from)`` rows: the catalog's price ground truth."""
    batch = list(rows)
    con.executemany(
        "INSERT INTO price_history (product_id, price_minor, currency, valid_from) VALUES (?, ?, ?, ?)", batch
    )
    return len(batch)


def max_key(con: sqlite3.Connection, table: str, column: str) -> int:
    """Largest integer in ``table.column`` (0 when empty): where the simulator's new ids start."""
    row = con.execute(f"SELECT COALESCE(MAX({column}), 0) FROM {table}").fetchone()
    return int(row[0])


def docs_checksum(con: sqlite3.Connection, table: str, digest: Callable[[bytes], None]) -> None:
    """Feed every stored doc of ``table`` (key order) into ``digest`` (e.g. ``hashlib.sha256().update``)."""
    spec = DOC_TABLES[table]
    for (raw,) in con.execute(f"SELECT doc FROM {table} ORDER BY {spec.key}"):
        digest(raw)
