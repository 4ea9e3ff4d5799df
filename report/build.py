"""Build the report of one published version: its marts as DuckDB views, the warehouse's ``ops`` read-only,
the business and pipeline pages, one HTML file.

``into_version`` is what the publisher calls (as an ``publish.publish.Attachment``) on the verified staging
folder, before the manifest is written: the report lands in the version it describes and is listed
in its manifest. ``render`` is the same for any folder and manifest (``python -m report``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from report import business, page, pipeline

log = logging.getLogger("report")

FILE_NAME = "report.html"
OPS_TABLES = ("runs", "source_horizons", "stream_batches", "dbt_results")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def connect_version(version_dir: Path, manifest: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view ``marts.<name>`` per mart, over the files the manifest lists."""
    con = duckdb.connect()
    with contextlib.suppress(duckdb.Error):  # no ICU extension: DuckDB has no zones and shows UTC already
        con.execute("set TimeZone = 'UTC'")
    con.execute("create schema marts")
    for name, mart in manifest.get("marts", {}).items():
        files = "[" + ", ".join(_lit(str(version_dir / f["path"])) for f in mart["files"]) + "]"
        con.execute(
            f"create view marts.{_q(name)} as select * from read_parquet({files}, hive_partitioning = false)"
        )
    return con


def attach_ops(con: duckdb.DuckDBPyConnection, warehouse: Path | None) -> pipeline.Ops:
    """Attach the warehouse read-only and expose its ``ops`` tables as views ``ops.<name>``.

    A warehouse that cannot be opened (missing, held by a writer, damaged) is not an error: the
    pipeline page says why and the business page is still built."""
    ops = pipeline.Ops()
    if warehouse is None or not warehouse.exists():
        ops.error = f"no warehouse at {warehouse}"
        return ops
    try:
        con.execute(f"attach {_lit(str(warehouse))} as {pipeline.WAREHOUSE} (read_only)")
    except duckdb.Error as exc:
        ops.error = str(exc).splitlines()[0]
        return ops
    found = con.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = ?", [pipeline.WAREHOUSE]
    ).fetchall()
    con.execute("create schema ops")
    for schema, table in found:
        if schema == "ops" and table in OPS_TABLES:
            con.execute(f"create view ops.{_q(table)} as select * from {pipeline.WAREHOUSE}.ops.{_q(table)}")
            ops.tables.add(table)
    ops.raw_schemas = sorted(s for s, t in found if t == "_dlt_loads" and s.startswith("raw_"))
    return ops


def render(version_dir: Path, manifest: dict[str, Any], warehouse: Path | None) -> tuple[str, dict[str, Any]]:
    """The report's HTML for ``version_dir`` and a small summary (its key figures) for the manifest."""
    created = manifest.get("created_at")
    as_of = datetime.fromisoformat(created) if created else datetime.now(UTC)
    con = connect_version(version_dir, manifest)
    try:
        ops = attach_ops(con, warehouse)
        pages = [business.page(con), pipeline.page(con, ops, manifest, as_of)]
    finally:
        con.close()
    meta = [
        ("version", str(manifest.get("version"))),
        ("published", as_of.isoformat(timespec="seconds")),
        ("git", str((manifest.get("publisher") or {}).get("git_revision"))),
        ("dbt invocation", str((manifest.get("dbt") or {}).get("invocation_id"))),
    ]
    footer = (
        "Built by report/ (python -m report) from this version's Parquet files and the warehouse's ops "
        "tables with DuckDB SQL (shown under each figure); plotly.js is inlined, so the page needs no "
        "network. exports/current/manifest.json lists this file with its sha256."
    )
    text = page.render("shop-elt report", meta, pages, footer)
    figures = {k.key: None if k.value is None else str(k.value) for p in pages for k in p.kpis}
    return text, {"key_figures": figures}


def into_version(
    staging: Path, manifest: dict[str, Any], warehouse: Path | None
) -> tuple[Path, dict[str, Any]]:
    """Write ``report.html`` into a version folder being published (``publish.publish.Attachment``)."""
    t0 = time.monotonic()
    text, detail = render(staging, manifest, warehouse)
    out = staging / FILE_NAME
    out.write_text(text, encoding="utf-8")
    log.info("report: %s (%.1f MiB) in %.2fs", out, out.stat().st_size / 2**20, time.monotonic() - t0)
    return out, detail
