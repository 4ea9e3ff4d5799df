"""Correctness checks for every measured run: row counts and money sums against the services' truth.

Why every run: a fast run that dropped pages or duplicated rows must not win the benchmark. A failed
check marks the measurement invalid in the report; it is never silently averaged in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from bench.truth import Truth

# endpoint → table in the project's raw warehouse (docs/contracts.md, "Raw warehouse")
RAW_TABLES: dict[str, str] = {
    "customers": "raw_customers.customers",
    "deletions": "raw_customers.deletions",
    "products": "raw_catalog.products",
    "categories": "raw_catalog.categories",
    "orders": "raw_orders.orders",
    "payments": "raw_payments.payments",
    "refunds": "raw_payments.refunds",
    "events": "raw_events.events",
}
MONEY: dict[str, str] = {
    "products": "price_minor",
    "orders": "total_minor",
    "payments": "amount_minor",
    "refunds": "amount_minor",
}


@dataclass
class Check:
    """Outcome of one correctness check."""

    ok: bool
    rows: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return "ok" if self.ok else "; ".join(self.problems[:4])


def compare(
    found_rows: dict[str, int], found_money: dict[str, int], truth: Truth, endpoints: list[str]
) -> Check:
    """Compare found counts and sums with the truth for `endpoints`."""
    problems: list[str] = []
    for name in endpoints:
        want, got = truth.rows[name], found_rows.get(name)
        if got != want:
            problems.append(f"{name}: {got} rows, expected {want}")
        if name in truth.money and name in found_money and found_money[name] != truth.money[name]:
            problems.append(f"{name}: money {found_money[name]}, expected {truth.money[name]}")
    return Check(not problems, sum(found_rows.get(n, 0) or 0 for n in endpoints), problems)


def check_limit_summary(summary: dict, truth: Truth, endpoints: list[str]) -> Check:
    """Check the limit client's own tally (it stores nothing, so its counts are the evidence)."""
    per = summary.get("endpoints", {})
    rows = {n: per[n]["rows"] for n in per}
    money = {n: per[n]["money"] for n in per if per[n].get("money") is not None}
    return compare(rows, money, truth, endpoints)


def check_duckdb(
    database: Path, tables: dict[str, str], truth: Truth, endpoints: list[str], committed_only: bool = False
) -> Check:
    """Count rows and sum money in `tables` of `database` (opened read-only) and compare."""
    if not database.exists():
        return Check(False, 0, [f"{database} does not exist"])
    rows: dict[str, int] = {}
    money: dict[str, int] = {}
    problems: list[str] = []
    con = duckdb.connect(str(database), read_only=True)
    try:
        for name in endpoints:
            table = tables[name]
            where = ""
            if committed_only:
                schema = table.split(".")[0]
                where = f" WHERE _dlt_load_id IN (SELECT load_id FROM {schema}._dlt_loads WHERE status = 0)"
            try:
                rows[name] = con.execute(f"SELECT count(*) FROM {table}{where}").fetchone()[0]
                if name in MONEY:
                    money[name] = int(
                        con.execute(f"SELECT coalesce(sum({MONEY[name]}), 0) FROM {table}{where}").fetchone()[
                            0
                        ]
                    )
            except duckdb.Error as exc:
                problems.append(f"{name}: {str(exc).splitlines()[0]}")
    finally:
        con.close()
    result = compare(rows, money, truth, endpoints)
    result.problems = problems + result.problems
    result.ok = result.ok and not problems
    return result


def check_parquet_dir(directory: Path, expected: dict[str, int]) -> Check:
    """Every mart in `expected` has a Parquet file (or folder) under `directory` with that many rows."""
    problems: list[str] = []
    total = 0
    con = duckdb.connect()
    try:
        for mart, want in expected.items():
            single, folder = directory / f"{mart}.parquet", directory / mart
            if single.is_file():
                glob = str(single)
            elif folder.is_dir() and any(folder.rglob("*.parquet")):
                glob = str(folder / "**" / "*.parquet")  # hive-partitioned mart
            else:
                problems.append(f"{mart}: no parquet under {directory}")
                continue
            got = con.execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()[0]
            total += got
            if got != want:
                problems.append(f"{mart}: {got} rows in parquet, expected {want}")
    finally:
        con.close()
    return Check(not problems, total, problems)
