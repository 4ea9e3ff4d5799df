"""Bulk writer for a fresh dataset: one connection per service file, batched ``executemany`` commits.

Bulk mode (``synchronous=OFF``, big page cache, indexes only at the end) is what lets scale 20 generate
in minutes; the files are written into a staging folder and moved into place only when complete, so a
killed generation never leaves a half-filled data dir that the launcher would mistake for real data.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from services.store.db import connect, create_indexes, db_path, init_schema, set_meta
from services.store.records import DOC_TABLES, add_price_history, erase_customers, put_docs
from services.store.schema import SERVICES

log = logging.getLogger("services.generator")
BATCH_ROWS = 20_000


class BulkWriter:
    """Buffers records per table and commits them in large batches into a staging folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.staging = data_dir / f".generating-{os.getpid()}"
        if self.staging.exists():
            shutil.rmtree(self.staging)
        self.staging.mkdir(parents=True)
        self.cons: dict[str, sqlite3.Connection] = {}
        for service in SERVICES:
            con = connect(self.staging, service, bulk=True)
            init_schema(con, service)
            self.cons[service] = con
        self.buffers: dict[str, list[dict[str, Any]]] = {table: [] for table in DOC_TABLES}
        self.counts: dict[str, int] = {table: 0 for table in DOC_TABLES}
        self.counts.update(deletions=0, price_history=0)

    def add(self, table: str, doc: dict[str, Any]) -> None:
        """Queue one record; flushes the table's buffer when it is large."""
        buffer = self.buffers[table]
        buffer.append(doc)
        if len(buffer) >= BATCH_ROWS:
            self.flush(table)

    def flush(self, table: str) -> None:
        """Write a table's buffered records in one transaction."""
        buffer = self.buffers[table]
        if not buffer:
            return
        con = self.cons[DOC_TABLES[table].service]
        con.execute("BEGIN")
        self.counts[table] += put_docs(con, table, buffer)
        con.execute("COMMIT")
        buffer.clear()

    def written(self, table: str) -> int:
        """Records of ``table`` so far, buffered ones included (for progress lines)."""
        return self.counts[table] + len(self.buffers.get(table, ()))

    def erasures(self, rows: list[tuple[int, str]]) -> None:
        """Record hard-deleted customers in ``deletions``."""
        con = self.cons["customers"]
        con.execute("BEGIN")
        self.counts["deletions"] += erase_customers(con, rows)
        con.execute("COMMIT")

    def price_history(self, rows: list[tuple[int, int, str, str]]) -> None:
        """Write the catalog's price ground truth."""
        con = self.cons["catalog"]
        con.execute("BEGIN")
        self.counts["price_history"] += add_price_history(con, rows)
        con.execute("COMMIT")

    def finish(
        self, meta: dict[str, dict[str, object]], on_file: Callable[[int], None] | None = None
    ) -> dict[str, int]:
        """Flush, index, stamp ``meta``, checkpoint, and move the finished files into ``data_dir``;
        ``on_file(n)`` after each of the service files is indexed."""
        for table in self.buffers:
            self.flush(table)
        for done, (service, con) in enumerate(self.cons.items(), start=1):
            create_indexes(con, service)
            con.execute("BEGIN")
            set_meta(con, meta.get(service, {}) | meta["*"])
            con.execute("COMMIT")
            con.execute("PRAGMA journal_mode = WAL")  # persistent in the file: the apps and simulator use WAL
            con.close()
            if on_file is not None:
                on_file(done)
        for service in SERVICES:
            target = db_path(self.data_dir, service)
            for suffix in ("-wal", "-shm"):
                Path(f"{target}{suffix}").unlink(missing_ok=True)
            os.replace(db_path(self.staging, service), target)
        shutil.rmtree(self.staging, ignore_errors=True)
        return dict(self.counts)

    def abort(self) -> None:
        """Drop the staging folder after a failure."""
        for con in self.cons.values():
            con.close()
        shutil.rmtree(self.staging, ignore_errors=True)
