"""Opening the service files: WAL so the web apps read while the simulator writes.

Connections are opened in autocommit mode (``isolation_level=None``) and writers use ``transaction``,
which takes the write lock up front (``BEGIN IMMEDIATE``): a deferred transaction that later upgrades to
a writer can fail with SQLITE_BUSY without waiting, while an immediate one waits out ``busy_timeout``.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.store.schema import INDEXES, SERVICES, TABLES

BUSY_TIMEOUT_MS = 15_000


def db_path(data_dir: Path | str, service: str) -> Path:
    """Where a service's SQLite file lives: ``<data_dir>/<service>.sqlite``."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; expected one of {SERVICES}")
    return Path(data_dir) / f"{service}.sqlite"


def connect(
    data_dir: Path | str, service: str, *, bulk: bool = False, readonly: bool = False
) -> sqlite3.Connection:
    """Open (and for writers, create) a service file in WAL mode.

    ``bulk`` trades durability for speed (no journal, ``synchronous=OFF``), for the one-shot generator
    writing into a staging folder only: a crash there means regenerating anyway. ``readonly`` opens via a
    ``mode=ro`` URI so a reader can never take the write lock by accident.
    """
    path = db_path(data_dir, service)
    if readonly:
        uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
        con = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if bulk:
        # a fresh file in a staging folder: no journal at all (half the writes); ``finish_bulk`` turns on WAL
        con.execute("PRAGMA journal_mode = OFF")
        con.execute("PRAGMA synchronous = OFF")
        con.execute("PRAGMA cache_size = -65536")
        con.execute("PRAGMA temp_store = MEMORY")
    elif not readonly:
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = NORMAL")
    return con


def init_schema(con: sqlite3.Connection, service: str) -> None:
    """Create the service's tables (no secondary indexes yet; see ``create_indexes``)."""
    for ddl in TABLES[service]:
        con.execute(ddl)


def create_indexes(con: sqlite3.Connection, service: str) -> None:
    """Create the keyset indexes the apps page by; idempotent."""
    for ddl in INDEXES[service]:
        con.execute(ddl)


@contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One short write transaction that takes the write lock immediately; rolls back on error."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def set_meta(con: sqlite3.Connection, values: dict[str, object]) -> None:
    """Upsert ``meta`` keys (values stored as text)."""
    con.executemany(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        [(key, None if value is None else str(value)) for key, value in values.items()],
    )


def get_meta(con: sqlite3.Connection) -> dict[str, str]:
    """All ``meta`` keys of one file."""
    return dict(con.execute("SELECT key, value FROM meta").fetchall())
