"""The comparison every fault case ends with: the warehouse and the published Parquet against a clean run.

Why a fingerprint and not a byte compare: a recovered run legitimately differs from a clean one in
bookkeeping (dlt load ids, dbt snapshot timestamps, version ids). What must not differ is the data:
per table the row count, the money totals, a checksum of the keys and a checksum of every
non-bookkeeping column. ``fingerprint`` computes exactly that for every raw, snapshot and mart table and
for every published mart; ``diff_fingerprints`` says precisely what differs.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from core.checksums import quote_ident, quote_literal
from tests.pytest.support.workspace import Workspace

# Columns that record *when/which run* wrote a row, not what the row says.
VOLATILE = re.compile(r"^(_dlt_.*|dbt_.*|load_id|.*_load_id|loaded_at|_loaded_at)$")
MONEY = re.compile(r"(_minor|amount.*|.*_usd|revenue.*|list_price|unit_price|line_amount|value_.*)$")
KEYS = re.compile(r"^(.*_id|event_id|sku|.*_key)$")
FINGERPRINT_SCHEMAS = ("raw_customers", "raw_catalog", "raw_orders", "raw_payments", "raw_events", "marts")


# The fingerprint and its comparison


@dataclass
class TablePrint:
    rows: int
    money: dict[str, str] = field(default_factory=dict)
    keys: str = ""
    content: str = ""


NUMERIC = re.compile(r"^(DECIMAL|BIGINT|INTEGER|HUGEINT|SMALLINT|DOUBLE|FLOAT|UBIGINT)")


def _table_print(con: duckdb.DuckDBPyConnection, relation: str, columns: list[tuple[str, str]]) -> TablePrint:
    stable = [c for c, _ in columns if not VOLATILE.match(c)]
    money = [c for c, t in columns if c in stable and MONEY.search(c) and NUMERIC.match(t.upper())]
    keys = [c for c in stable if KEYS.match(c)]
    parts = ["count(*)"]
    parts += [f"coalesce(sum({quote_ident(c)}), 0)::varchar" for c in money]
    if keys:
        key_row = "row(" + ", ".join(quote_ident(c) for c in keys) + ")"
        parts.append(f"coalesce(sum(hash({key_row})::hugeint), 0)::varchar")
    else:
        parts.append("''")
    all_row = "row(" + ", ".join(quote_ident(c) for c in stable) + ")"
    parts.append(f"coalesce(sum(hash({all_row})::hugeint), 0)::varchar")
    values = con.execute(f"select {', '.join(parts)} from {relation}").fetchone()
    return TablePrint(
        rows=int(values[0]),
        money=dict(zip(money, values[1 : 1 + len(money)], strict=True)),
        keys=values[1 + len(money)],
        content=values[2 + len(money)],
    )


def warehouse_print(warehouse: Path, schemas: tuple[str, ...] = FINGERPRINT_SCHEMAS) -> dict[str, TablePrint]:
    """Fingerprints of every table (not views, not dlt bookkeeping) in ``schemas``; committed rows only."""
    out: dict[str, TablePrint] = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            f"where table_schema in ({', '.join(quote_literal(s) for s in schemas)}) "
            "and table_name not like '\\_dlt%' escape '\\' order by 1, 2"
        ).fetchall()
        for schema, table in tables:
            cols = [
                (r[0], r[1])
                for r in con.execute(
                    "select column_name, data_type from information_schema.columns "
                    "where table_schema = ? and table_name = ? order by ordinal_position",
                    [schema, table],
                ).fetchall()
            ]
            relation = f"{quote_ident(schema)}.{quote_ident(table)}"
            if schema.startswith("raw_") and any(c == "_dlt_load_id" for c, _ in cols):
                relation = (
                    f"(select * from {relation} where _dlt_load_id in (select load_id from "
                    f"{quote_ident(schema)}._dlt_loads where status = 0))"
                )
            out[f"{schema}.{table}"] = _table_print(con, relation, cols)
    return out


def exports_print(exports: Path) -> dict[str, TablePrint]:
    """Fingerprints of every mart of the current published version, read from its Parquet files."""
    version = exports / os.readlink(exports / "current")
    manifest = json.loads((version / "manifest.json").read_text())
    out: dict[str, TablePrint] = {}
    con = duckdb.connect()
    for name, mart in sorted(manifest["marts"].items()):
        files = [str(version / f["path"]) for f in mart["files"]]
        relation = f"read_parquet([{', '.join(quote_literal(f) for f in files)}], hive_partitioning = false)"
        cols = [(r[0], r[1]) for r in con.execute(f"describe select * from {relation}").fetchall()]
        out[f"parquet.{name}"] = _table_print(con, relation, cols)
    con.close()
    return out


def fingerprint(ws: Workspace) -> dict[str, TablePrint]:
    """The whole comparable state of a workspace: warehouse tables plus the current Parquet version."""
    return {**warehouse_print(ws.warehouse), **exports_print(ws.exports)}


def diff_fingerprints(expected: dict[str, TablePrint], got: dict[str, TablePrint]) -> list[str]:
    """Human-readable differences (empty when equal): missing/extra tables, rows, money, keys, content."""
    problems: list[str] = []
    for name in sorted(set(expected) | set(got)):
        if name not in got:
            problems.append(f"{name}: missing (clean run has {expected[name].rows} rows)")
            continue
        if name not in expected:
            problems.append(f"{name}: not in the clean run ({got[name].rows} rows)")
            continue
        e, g = expected[name], got[name]
        if e.rows != g.rows:
            problems.append(f"{name}: {g.rows} rows, clean run {e.rows}")
        for col in sorted(set(e.money) | set(g.money)):
            if e.money.get(col) != g.money.get(col):
                problems.append(f"{name}.{col}: total {g.money.get(col)}, clean run {e.money.get(col)}")
        if e.keys != g.keys:
            problems.append(f"{name}: key checksum differs (lost, duplicated or changed keys)")
        if e.content != g.content:
            problems.append(f"{name}: content checksum differs (some non-bookkeeping value changed)")
    return problems


def assert_matches_clean(expected: dict[str, TablePrint], ws: Workspace, context: str = "") -> None:
    """The suite's one end-of-case check: this workspace equals the clean run, table by table."""
    problems = diff_fingerprints(expected, fingerprint(ws))
    assert not problems, f"{context}: state differs from a clean run:\n  " + "\n  ".join(problems)
