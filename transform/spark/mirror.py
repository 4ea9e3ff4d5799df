"""Publish Spark's marts through the same publish step (publish/publish.py) and manifest as DuckDB's.

Why a mirror and not a second publisher: publish is one job (write, read back, checksum against the
source, manifest, atomic switch) and reads its source through DuckDB. Spark's marts are Parquet files
in its warehouse folder (``<warehouse>/<schema>.db/<table>/``, partitioned ones in Hive folders), and
DuckDB reads those. So a small DuckDB file holds one view per mart over Spark's files - columns in the
model's documented order (Spark moves partition columns last), timestamps zone-less as Spark wrote them
- plus views of the raw lake's ``_dlt_loads`` for the manifest's source list. The publisher then runs
unchanged on that file: every check it makes against the warehouse is made against Spark's output.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import duckdb

from core.checksums import quote_ident, quote_literal
from transform.dbt_artifacts import MartSpec

log = logging.getLogger("transform.spark.mirror")

MIRROR_NAME = "spark_marts.duckdb"


class MirrorError(RuntimeError):
    """A mart Spark should have written is missing or unreadable."""


def table_folder(warehouse: Path, schema: str, table: str) -> Path:
    """Where Spark keeps a managed table (Hive layout)."""
    return warehouse / f"{schema}.db" / table


def documented_columns(manifest_path: Path) -> dict[str, list[str]]:
    """``{unique_id: [column, ...]}`` in each model's documented order (the order of its select)."""
    nodes = json.loads(manifest_path.read_text()).get("nodes", {})
    return {uid: list(node.get("columns") or {}) for uid, node in nodes.items()}


def _mart_view(con: duckdb.DuckDBPyConnection, spec: MartSpec, folder: Path, order: list[str]) -> None:
    files = [p for p in folder.rglob("*.parquet") if not p.name.startswith((".", "_"))]
    if not files:
        raise MirrorError(
            f"{spec.name}: no Parquet files in {folder}: did `dbt build --target spark` build it?"
        )
    partitioned = any("=" in p.name for p in folder.iterdir() if p.is_dir())
    source = (
        f"read_parquet({quote_literal(str(folder) + '/**/*.parquet')}, "
        f"hive_partitioning = {str(partitioned).lower()}, union_by_name = true)"
    )
    present = [r[0] for r in con.execute(f"describe select * from {source}").fetchall()]
    columns = [c for c in order if c in present] + [c for c in present if c not in order]
    con.execute(f"create schema if not exists {quote_ident(spec.schema)}")
    con.execute(
        f"create view {quote_ident(spec.schema)}.{quote_ident(spec.alias)} as "
        f"select {', '.join(quote_ident(c) for c in columns)} from {source}"
    )


def build(
    specs: list[MartSpec], *, manifest: Path, warehouse: Path, lake: Path | None, out_dir: Path
) -> Path:
    """A fresh mirror file in ``out_dir`` with a view per mart in ``specs`` (and the lake's load lists)."""
    path = out_dir / MIRROR_NAME
    path.unlink(missing_ok=True)
    orders = documented_columns(manifest)
    with duckdb.connect(str(path)) as con:
        for spec in specs:
            _mart_view(
                con, spec, table_folder(warehouse, spec.schema, spec.alias), orders.get(spec.unique_id, [])
            )
        if lake is not None:
            for loads in sorted(lake.glob("*/_dlt_loads/*.parquet")):
                schema = loads.parent.parent.name
                con.execute(f"create schema if not exists {quote_ident(schema)}")
                con.execute(
                    f"create view {quote_ident(schema)}._dlt_loads as "
                    f"select * from read_parquet({quote_literal(str(loads))})"
                )
    log.info("mirror of %d Spark marts -> %s", len(specs), path)
    return path
