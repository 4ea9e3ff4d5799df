"""Read-only SQLite access, one connection per thread.

Services only read; the generator and simulator write through services/store. A per-thread connection
avoids sharing sqlite3 objects across the threadpool FastAPI runs sync handlers in, and WAL mode lets
readers run while the simulator writes.
"""

from __future__ import annotations

import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class ReadOnlyDB:
    """Lazily opened read-only connections to one service's SQLite file."""

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()

    def conn(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            if not self.path.exists():
                raise FileNotFoundError(f"service database {self.path} does not exist")
            uri = "file:" + urllib.parse.quote(str(self.path)) + "?mode=ro"
            con = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
            con.execute("PRAGMA query_only = 1")
            con.execute("PRAGMA mmap_size = 268435456")
            con.execute("PRAGMA cache_size = -65536")
            self._local.con = con
        return con

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """One read transaction, so several queries (a count and a page) see the same data."""
        con = self.conn()
        con.execute("BEGIN")
        try:
            yield con
        finally:
            con.execute("COMMIT")

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.conn().execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        return self.conn().execute(sql, params).fetchone()

    def check_tables(self, *tables: str) -> None:
        """Fail at start-up (not at the first request) when the file lacks a table the service serves."""
        present = {r[0] for r in self.all("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [t for t in tables if t not in present]
        if missing:
            raise RuntimeError(f"{self.path} lacks table(s) {', '.join(missing)}")


def as_bytes(doc: bytes | str) -> bytes:
    """Docs are stored as orjson bytes; accept TEXT too so a hand-edited row still serves."""
    return doc if isinstance(doc, bytes) else doc.encode()


def join_docs(docs: Sequence[bytes | str]) -> bytes:
    """A JSON array of pre-rendered docs, joined without decoding them (the per-row fallback is for TEXT)."""
    try:
        return b"[" + b",".join(docs) + b"]"  # type: ignore[arg-type]
    except TypeError:
        return b"[" + b",".join(as_bytes(d) for d in docs) + b"]"
