"""An atomic full refresh: a clean first load is built aside, then swapped into ``raw_<service>`` in one
DuckDB transaction. Until that commit the previous raw tables and their dlt state are untouched.

Why not dlt's ``refresh="drop_sources"`` (what ``--full-refresh`` used): dlt drops the service's tables
when the load step *starts* (``Load.initialize_package``), in statements of their own; a load that fails
after that - one value DuckDB refuses, such as invalid UTF-8 - leaves the tables empty while the cursors
say everything was loaded (issue 11: ``raw_customers.customers`` went from 498 rows to 0 and every later
run loaded nothing).

Why not dlt's ``replace`` write disposition with ``insert-from-staging`` (read in dlt's source, 1.31:
``load/load.py`` ``create_followup_jobs``, ``load/utils.py`` ``get_completed_table_chain``,
``destinations/sql_jobs.py`` ``SqlStagingReplaceFollowupJob``, ``job_client_impl.py`` ``SqlLoadJob``):
the data is staged first, but the TRUNCATE + INSERT ... SELECT that replaces a table is one follow-up
SQL job *per table chain* (a root table and its dlt-nested tables), each in a transaction of its own,
started as soon as that chain's files are loaded. Our child tables (``customers__addresses``,
``orders__items``) are root tables of their own (table variants, ``max_table_nesting=0``) and so is the
deletions feed: ``customers``, ``customers__addresses`` and ``deletions`` would be replaced in three
transactions, a file that fails leaves the chains already replaced in place, and a reader in between
sees new customers with old addresses. ``replace`` also loses what a first load does: merge's
deduplication (newest version wins when a walk returns a record twice), a schema rebuilt from scratch
(no columns the source no longer has), and cursors started from nothing (we would reset them by hand).
Measured at scale 1, ``replace`` is the cheaper of the two: it saves the swap's copy of every row
(DuckDB has no way to move a table to another schema or file, so the swap copies; most of that copy is
the events table). The swap is chosen anyway: it is the one that is atomic across a service's tables,
and its result is a first load by construction.

How: ``run_first_load`` is the loader's own code path into a fresh DuckDB file
(``<dlt dir>/refresh/<service>.duckdb``) with its own working folder and a pipeline of the same name
and dataset, so rows, child tables, hard deletes (applied there) and the dlt state with its cursors are
exactly what a first load writes. Then ``swap``, in one transaction on the warehouse connection: drop
``raw_<service>``'s tables, create them with the refresh file's own DDL (``duckdb_tables().sql``, so
NOT NULL columns stay NOT NULL), copy the rows, drop dlt's merge staging schema (scratch, rebuilt by the
next merge). Last, ``adopt``: the refresh's working folder replaces the pipeline's, so the next run
starts from the refresh's state without a restore.

Crash windows: before the commit nothing of ``raw_<service>`` or its pipeline changed, and what the
refresh left is discarded by the next run (``discard``); a kill inside the transaction is rolled back
by DuckDB. Between the commit and ``adopt`` the pipeline's folder still holds the old state, which the
warehouse no longer has: ``extract/statesync.py`` drops it (local state ahead of the warehouse) or dlt
restores the warehouse's (newer), so the next run continues from the refresh's cursors either way.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
from dlt.common.destination.client import DestinationClientDwhWithStagingConfiguration
from dlt.common.storages.load_package import ParsedLoadJobFileName

from core import settings
from core.checksums import quote_ident

log = logging.getLogger("extract.refresh")

REFRESH_FOLDER = "refresh"  # under the dlt working folder, covered by the warehouse lock like the rest


def staging_dataset(dataset: str) -> str:
    """dlt's merge staging dataset of ``dataset`` (its default name layout, which this project keeps)."""
    return DestinationClientDwhWithStagingConfiguration.staging_dataset_name_layout % dataset


def package_rows(working_folder: Path) -> dict[str, dict[str, int | None]]:
    """Rows per data table of every package still in ``working_folder`` (extracted or normalized, not
    loaded): ``{load_id: {table: rows}}``; ``None`` for a file that cannot be read (a poisoned one)."""
    import pyarrow.parquet as pq

    out: dict[str, dict[str, int | None]] = {}
    for pattern in ("normalize/extracted/*/*_jobs/*", "load/normalized/*/*_jobs/*"):
        for job in sorted(working_folder.glob(pattern)):
            if job.suffix != ".parquet":
                continue
            table = ParsedLoadJobFileName.parse(job.name).table_name
            if table.startswith("_dlt"):
                continue
            tables = out.setdefault(job.parent.parent.name, {})
            try:
                rows: int | None = pq.ParquetFile(job).metadata.num_rows
            except Exception:  # unreadable: say so rather than guess
                rows = None
            prev = tables.get(table, 0)
            tables[table] = None if rows is None or prev is None else prev + rows
    return out


def describe_rows(tables: dict[str, int | None]) -> str:
    """``customers 12, customers__addresses 20`` (``?`` for unreadable files)."""
    return ", ".join(f"{t} {'?' if n is None else n}" for t, n in sorted(tables.items())) or "no rows"


@dataclass(frozen=True)
class Refresh:
    """Where the full refresh of one service is built: a DuckDB file and a dlt working folder."""

    service: str
    root: Path

    @classmethod
    def of(cls, service: str) -> Refresh:
        return cls(service, settings.dlt_dir() / REFRESH_FOLDER)

    @property
    def database(self) -> Path:
        return self.root / f"{self.service}.duckdb"

    @property
    def pipelines_dir(self) -> str:
        """The ``pipelines_dir`` of the refresh's pipeline (its working folder is ``working_folder``)."""
        return str(self.root)

    @property
    def working_folder(self) -> Path:
        return self.root / f"extract_{self.service}"

    def _database_files(self) -> list[Path]:
        db = self.database
        return [p for p in (db, db.with_name(db.name + ".wal"), db.with_name(db.name + ".tmp")) if p.exists()]

    def leftovers(self) -> str | None:
        """What an unfinished refresh left here (its packages with their rows, its file), or None."""
        parts = []
        if self.working_folder.exists():
            pending = package_rows(self.working_folder)
            parts += [
                f"package {load_id} ({describe_rows(rows)})" for load_id, rows in sorted(pending.items())
            ]
            if not pending:
                parts.append("its working folder")
        if self._database_files():
            parts.append(f"its database {self.database.name}")
        return "; ".join(parts) or None

    def discard(self) -> str | None:
        """Remove everything an unfinished refresh left; return what that was (None when nothing)."""
        what = self.leftovers()
        if self.working_folder.exists():
            shutil.rmtree(self.working_folder)
        for path in self._database_files():
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        return what

    def connect(self, config: dict[str, str]) -> duckdb.DuckDBPyConnection:
        """A connection to a new, empty refresh database (``config``: the run's DuckDB settings)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for path in self._database_files():
            path.unlink()
        return duckdb.connect(str(self.database), config=config)

    def swap(self, cursor: duckdb.DuckDBPyConnection, dataset: str) -> None:
        """Replace every table of ``dataset`` in the warehouse with the refresh database's, in one
        transaction (the refresh database must be closed by its own connection first)."""
        alias = f"shop_refresh_{self.service}"
        cursor.execute(f"attach {quote_ident(str(self.database))} as {quote_ident(alias)} (read_only)")
        try:
            new_tables = cursor.execute(
                "select table_name, sql from duckdb_tables() where database_name = ? and schema_name = ?"
                " order by table_name",
                [alias, dataset],
            ).fetchall()
            if not new_tables:
                raise RuntimeError(f"the refresh database has no tables in {dataset}")
            old_tables = [
                r[0]
                for r in cursor.execute(
                    "select table_name from duckdb_tables()"
                    " where database_name = current_database() and schema_name = ?",
                    [dataset],
                ).fetchall()
            ]
            schema = quote_ident(dataset)
            cursor.begin()
            try:
                for table in old_tables:
                    cursor.execute(f"drop table {schema}.{quote_ident(table)}")
                cursor.execute(f"create schema if not exists {schema}")
                for table, ddl in new_tables:
                    cursor.execute(ddl)
                    cursor.execute(
                        f"insert into {schema}.{quote_ident(table)}"
                        f" select * from {quote_ident(alias)}.{schema}.{quote_ident(table)}"
                    )
                cursor.execute(f"drop schema if exists {quote_ident(staging_dataset(dataset))} cascade")
                cursor.commit()
            except BaseException:
                cursor.rollback()
                raise
        finally:
            cursor.execute(f"detach {quote_ident(alias)}")

    def adopt(self, pipeline_folder: Path) -> None:
        """After a committed swap: the refresh's working folder becomes the pipeline's; the refresh
        database is removed."""
        if pipeline_folder.exists():
            shutil.rmtree(pipeline_folder)
        pipeline_folder.parent.mkdir(parents=True, exist_ok=True)
        self.working_folder.replace(pipeline_folder)
        for path in self._database_files():
            path.unlink()
