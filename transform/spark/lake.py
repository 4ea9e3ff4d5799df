"""Raw data for the spark target: the loaders' raw tables copied out of the DuckDB warehouse as a Parquet
lake, one folder per table, and the description dbt needs to register them in Spark's metastore under
the same schema and table names (macros/spark_lake.sql), so every ``source()`` resolves on both targets.

Why a copy and not dlt's filesystem destination: the loaders' guarantees (committed loads, cursors, the
row drop guard's baselines, erasures) are proved against the DuckDB warehouse; a lake written from it by
DuckDB's ``COPY`` holds exactly what a DuckDB build reads, at the cost of one sequential read of raw.
Each export goes to a new folder (``lake/<id>/``) and the older ones are removed only after the next
export is written, so a Spark build never reads a half-written table.

Timestamps keep their zone in Parquet (UTC-adjusted); Spark reads them as zoned timestamps and staging's
``to_utc()`` turns them into the zone-less UTC ones the models use. Types Spark's Parquet reader does not
take (unsigned and 128-bit integers, UUID, JSON, intervals, times with a zone) are written as a wider
type or as text (``SPARK_CASTS``).
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from core.checksums import quote_ident, quote_literal

log = logging.getLogger("transform.spark.lake")

# Which warehouse tables the lake holds: every table of the loaders' raw_<service> schemas except dlt's
# bookkeeping that no model reads, plus the loaders' load horizons (source `ops`).
RAW_SCHEMA_PREFIX = "raw_"
SKIPPED_SCHEMA_SUFFIX = "_staging"  # dlt's merge staging datasets
SKIPPED_TABLES = {"_dlt_version", "_dlt_pipeline_state"}
EXTRA_TABLES = [("ops", "source_horizons")]
SPARK_CASTS = {
    "UBIGINT": "decimal(20, 0)",
    "HUGEINT": "decimal(38, 0)",
    "UHUGEINT": "decimal(38, 0)",
    "UINTEGER": "bigint",
    "USMALLINT": "integer",
    "UTINYINT": "smallint",
    "UUID": "varchar",
    "JSON": "varchar",
    "INTERVAL": "varchar",
    "TIME WITH TIME ZONE": "varchar",
}


@dataclass
class LakeExport:
    """One export: its folder and, per schema, the tables written (``{schema: {table: rows}}``)."""

    root: Path
    tables: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(r for t in self.tables.values() for r in t.values())

    def dbt_var(self) -> dict[str, object]:
        """The ``spark_raw_lake`` var of the dbt build that registers this export."""
        return {"root": str(self.root), "tables": {s: sorted(t) for s, t in sorted(self.tables.items())}}


def lake_dir(spark_dir: Path) -> Path:
    return spark_dir / "lake"


def raw_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(schema, table) of every table the lake holds, in a stable order."""
    rows = con.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_type = 'BASE TABLE' and table_schema like ? escape '\\' order by 1, 2",
        [RAW_SCHEMA_PREFIX.replace("_", "\\_") + "%"],
    ).fetchall()
    found = [(s, t) for s, t in rows if not s.endswith(SKIPPED_SCHEMA_SUFFIX) and t not in SKIPPED_TABLES]
    for schema, table in EXTRA_TABLES:
        exists = con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()[0]
        if exists:
            found.append((schema, table))
    return found


def _select_list(con: duckdb.DuckDBPyConnection, relation: str) -> str:
    """The columns of ``relation``, those Spark cannot read cast to a type it can."""
    out = []
    for name, dtype, *_ in con.execute(f"describe select * from {relation}").fetchall():
        ident = quote_ident(name)
        cast = SPARK_CASTS.get(dtype.upper())
        out.append(f"cast({ident} as {cast}) as {ident}" if cast else ident)
    return ", ".join(out)


def export(warehouse: Path, spark_dir: Path) -> LakeExport:
    """Copy the raw tables of ``warehouse`` into a new folder under ``spark_dir/lake``.

    The caller holds the warehouse lock (no loader writes meanwhile). Exports older than the previous
    one are removed afterwards: the previous one may still be registered in Spark until the next build.
    """
    started = time.monotonic()
    lakes = lake_dir(spark_dir)
    lakes.mkdir(parents=True, exist_ok=True)
    root = lakes / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    partial = root.with_name(root.name + ".partial")
    result = LakeExport(root)
    try:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            con.execute("set TimeZone = 'UTC'")
            for schema, table in raw_tables(con):
                relation = f"{quote_ident(schema)}.{quote_ident(table)}"
                folder = partial / schema / table
                folder.mkdir(parents=True)
                target = folder / "part-0.parquet"
                con.execute(
                    f"copy (select {_select_list(con, relation)} from {relation}) to "
                    f"{quote_literal(str(target))} (format parquet, compression zstd)"
                )
                (rows,) = con.execute(
                    f"select count(*) from read_parquet({quote_literal(str(target))})"
                ).fetchone()
                result.tables.setdefault(schema, {})[table] = int(rows)
        partial.rename(root)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    folders = sorted(p for p in lakes.iterdir() if p.is_dir() and p != root)
    complete = [p for p in folders if not p.name.endswith(".partial")]
    for old in [p for p in folders if p.name.endswith(".partial")] + complete[:-1]:
        shutil.rmtree(old, ignore_errors=True)
    result.seconds = time.monotonic() - started
    log.info(
        "raw lake: %d tables, %d rows in %.1fs -> %s",
        sum(len(t) for t in result.tables.values()),
        result.rows,
        result.seconds,
        root,
    )
    return result
