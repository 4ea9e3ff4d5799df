"""The loader suite's helpers: where a test's loader writes (``LoaderEnv``), the loader as a real process
(``run_cli``/``popen_cli``), and ground truth read straight from the services' SQLite files. Fixtures
that build these live in conftest.py; tests import from here, never from a conftest."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import orjson

from core.settings import repo_root
from services.launcher import Fleet
from tests.pytest.support.sources import child_env

# knobs that keep fault tests short: small retry budget, short backoff
FAST_RETRIES = {
    "SOURCES__EXTRACT__MAX_ATTEMPTS": "3",
    "SOURCES__EXTRACT__BACKOFF_BASE": "0.05",
    "SOURCES__EXTRACT__BACKOFF_MAX": "0.2",
    "SOURCES__EXTRACT__MAX_RETRY_AFTER": "2",
}


@dataclass
class LoaderEnv:
    """Where one test's loader writes, and the environment it runs with."""

    root: Path
    warehouse: Path
    run_dir: Path
    env: dict[str, str]

    def con(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(str(self.warehouse), read_only=True)
        con.execute("set TimeZone = 'UTC'")
        return con


def fleet_loader_env(fleet: Fleet) -> dict[str, str]:
    """The fleet's SOURCES__* variables (base URLs and credentials), as the launcher writes them."""
    return {k: v for k, v in fleet.env().items() if k.startswith("SOURCES__")}


def run_cli(
    env: LoaderEnv, *args: str, timeout: float = 300, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python -m extract ARGS`` as a real process with the loader env."""
    full_env = child_env("SOURCES__")
    full_env.update(env.env)
    full_env.update(extra or {})
    return subprocess.run(
        [sys.executable, "-m", "extract", *args],
        cwd=repo_root(),
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def popen_cli(
    env: LoaderEnv, *args: str, extra: dict[str, str] | None = None, wrapper: Sequence[str] = ()
) -> subprocess.Popen:
    """``python -m extract ARGS`` started with the loader env, output piped; ``wrapper`` is a command
    prefix (e.g. ``bench.wrap`` to measure the loader's memory), run in its own process group."""
    full_env = child_env("SOURCES__")
    full_env.update(env.env)
    full_env.update(extra or {})
    return subprocess.Popen(
        [*wrapper, sys.executable, "-m", "extract", *args],
        cwd=repo_root(),
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=bool(wrapper),
    )


# ---- ground truth ---------------------------------------------------------------------------------

SOURCE_TABLES = {
    # raw table -> (service file, sqlite table, key)
    ("customers", "customers"): ("customers", "customer_id"),
    ("customers", "deletions"): ("deletions", "customer_id"),
    ("catalog", "products"): ("products", "product_id"),
    ("catalog", "categories"): ("categories", "category_id"),
    ("orders", "orders"): ("orders", "order_id"),
    ("payments", "payments"): ("payments", "payment_id"),
    ("payments", "refunds"): ("refunds", "refund_id"),
    ("events", "events"): ("events", "event_id"),
}


def source_rows(data_dir: Path, service: str, table: str) -> dict[int, dict | str]:
    """key -> served doc (dict) for doc tables, or key -> deleted_at for the deletions feed."""
    con = sqlite3.connect(f"file:{data_dir / (service + '.sqlite')}?mode=ro", uri=True)
    try:
        if table == "deletions":
            return dict(con.execute("select customer_id, deleted_at from deletions").fetchall())
        key = SOURCE_TABLES[(service, table)][1]
        return {k: orjson.loads(doc) for k, doc in con.execute(f"select {key}, doc from {table}")}
    finally:
        con.close()


def committed(con: duckdb.DuckDBPyConnection, service: str, table: str, columns: str) -> list[tuple]:
    """Rows of a raw table from committed loads only (the lineage rule readers must apply)."""
    return con.execute(
        f"select {columns} from raw_{service}.{table} where _dlt_load_id in "
        f"(select load_id from raw_{service}._dlt_loads where status = 0) order by all"
    ).fetchall()


def assert_matches_source(env: LoaderEnv, data_dir: Path, services: tuple[str, ...]) -> dict[str, int]:
    """Every raw table equals the service's own data: keys, versions (updated_at) and child rows."""
    counts: dict[str, int] = {}
    con = env.con()
    try:
        for (service, table), (_, key) in SOURCE_TABLES.items():
            if service not in services:
                continue
            truth = source_rows(data_dir, service, table)
            if table == "deletions":
                want = sorted((k, v) for k, v in truth.items())
                got = [
                    (k, v)
                    for k, v in committed(
                        con, service, table, f"{key}, strftime(deleted_at, '%Y-%m-%dT%H:%M:%S.%fZ')"
                    )
                ]
            elif table in ("categories", "events"):
                want = sorted(truth)
                got = [r[0] for r in committed(con, service, table, key)]
            else:
                want = sorted((k, d["updated_at"]) for k, d in truth.items())
                got = committed(con, service, table, f"{key}, strftime(updated_at, '%Y-%m-%dT%H:%M:%S.%fZ')")
            where = f"raw_{service}.{table}"
            assert got == want, f"{where} differs from the source ({len(got)} vs {len(want)} rows)"
            counts[f"{service}.{table}"] = len(got)
            if table == "customers":
                want_addr = sorted(
                    (d["customer_id"], a["address_id"], a["city"])
                    for d in truth.values()
                    for a in d["addresses"]
                )
                got_addr = committed(con, service, "customers__addresses", "customer_id, address_id, city")
                assert got_addr == want_addr, "raw_customers.customers__addresses differs from the source"
                want_del = sorted(k for k, d in truth.items() if d["deleted_at"])
                got_del = [
                    r[0]
                    for r in con.execute(
                        "select customer_id from raw_customers.customers"
                        " where deleted_at is not null order by 1"
                    ).fetchall()
                ]
                assert got_del == want_del, "soft-deleted customers are not flagged as in the source"
                counts["customers.customers__addresses"] = len(got_addr)
            if table == "orders":
                want_items = sorted(
                    (d["order_id"], i["line_id"], i["quantity"]) for d in truth.values() for i in d["items"]
                )
                got_items = committed(con, service, "orders__items", "order_id, line_id, quantity")
                assert got_items == want_items, "raw_orders.orders__items differs from the source"
                counts["orders.orders__items"] = len(got_items)
            dupes = con.execute(
                f"select count(*) - count(distinct {key}) from raw_{service}.{table}"
            ).fetchone()[0]
            assert dupes == 0, f"raw_{service}.{table} has {dupes} duplicate keys"
    finally:
        con.close()
    return counts
