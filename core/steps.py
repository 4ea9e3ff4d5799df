"""One logged step of a flow: an ``ops.runs`` row written when it starts and finished when it ends,
failures included, with per-table row counts in ``ops.run_tables``.

The warehouse connection is opened only to write those rows and closed in between, because the step
itself usually runs a child process (a loader, dbt) that needs DuckDB's single write connection.
The caller holds the warehouse lock around the whole step.

Writing the log never fails a step and never replaces the step's own error: a warehouse that cannot
take a row (full disk, read-only, damaged) gets it kept in the fallback file instead
(``core.ops_fallback``), written by the next run that can.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import duckdb

from core import ops_fallback, ops_log, settings, signals
from core.checksums import quote_ident
from core.ops_log import RunRecord

log = logging.getLogger("elt.steps")


@dataclass
class StepLog:
    """What a step reports back: rows, per-table counts, a final status other than success."""

    run_id: str
    step: str
    rows: int | None = None
    tables: list[tuple[str, str, int]] = field(default_factory=list)
    inputs: list[tuple[str, str, str | None]] = field(default_factory=list)
    status: str = "success"
    seconds: float = 0.0
    error: str | None = None


def _connect() -> duckdb.DuckDBPyConnection:
    path = settings.warehouse_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return duckdb.connect(str(path))


def connect() -> duckdb.DuckDBPyConnection:
    """The warehouse, read-write, for a short read between child processes (lock held by the caller)."""
    return _connect()


def write(run: RunRecord) -> bool:
    """Write ``run`` to ``ops`` (after the rows earlier runs kept), or keep it in the fallback file when
    the warehouse cannot be opened or written; never raises for that. Lock held by the caller."""
    try:
        con = _connect()
    except ops_fallback.STORAGE_ERRORS as exc:
        ops_fallback.keep(run, exc)
        return False
    try:
        return ops_fallback.save(con, run)
    finally:
        try:
            con.close()
        except ops_fallback.STORAGE_ERRORS as exc:  # the checkpoint on close; the WAL still holds the rows
            log.warning("closing the warehouse after writing ops.runs: %s", ops_fallback.reason(exc))


@contextlib.contextmanager
def logged_step(command: str, step: str, run: RunRecord | None = None) -> Iterator[StepLog]:
    """Record ``step`` of ``command`` in the ops tables around the ``with`` block (as ``run`` when given:
    a record made before the lock, see ``kept_if_unlocked``)."""
    run = run or ops_log.new_run(command, step)
    write(run)
    record = StepLog(run.run_id, step)
    started = time.monotonic()
    try:
        yield record
    except signals.Interrupted as exc:  # SIGTERM / SIGINT: the row ends, as "interrupted"
        record.status, record.error = "interrupted", str(exc)
        raise
    except BaseException as exc:
        record.status = "failed"
        record.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        record.seconds = time.monotonic() - started
        ops_log.finish(run, record.status, record.rows, record.error, record.tables, record.inputs)
        write(run)


def new_run(command: str, step: str) -> RunRecord:
    """A long-lived run (e.g. the whole flow), made before the lock is taken so that a run whose lock
    cannot be had (read-only folder, busy) is still recorded; write it with ``open_run``."""
    return ops_log.new_run(command, step)


def open_run(run: RunRecord) -> None:
    """Write the start of a ``new_run`` record (``running``); lock held by caller."""
    write(run)


def close_run(run: RunRecord, status: str, rows: int | None = None, error: str | None = None) -> None:
    """Finish a row opened with ``open_run``; lock held by caller (see ``keep_run`` without it)."""
    write(ops_log.finish(run, status, rows, error))


def kept_if_unlocked(run: RunRecord) -> contextlib.AbstractContextManager[RunRecord]:
    """Around ``warehouse_lock`` + ``logged_step(..., run)``: a lock file that cannot be created or
    written (read-only or full folder) fails the step before it is logged; keep ``run`` as failed then."""
    return ops_fallback.kept_on_failure(run)


def keep_run(
    run: RunRecord, why: BaseException, status: str, rows: int | None = None, error: str | None = None
) -> None:
    """Finish a row opened with ``open_run`` when the warehouse lock cannot be had (read-only, busy):
    the record goes to the fallback file, written to ``ops`` by the next run that gets the lock."""
    ops_fallback.keep(ops_log.finish(run, status, rows, error), why)


def committed_loads() -> dict[str, str]:
    """Newest committed dlt load id per raw schema (empty before the first load)."""
    path = settings.warehouse_path()
    if not path.exists():
        return {}
    with _connect() as con:
        return _committed_loads(con)


def committed_loads_of(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """``committed_loads`` on an open connection."""
    return _committed_loads(con)


def _committed_loads(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    schemas = [
        r[0]
        for r in con.execute(
            "select distinct table_schema from information_schema.tables "
            "where table_name = '_dlt_loads' and table_schema like 'raw\\_%' escape '\\'"
        ).fetchall()
    ]
    out: dict[str, str] = {}
    for schema in schemas:
        (latest,) = con.execute(
            f"select max(load_id) from {quote_ident(schema)}._dlt_loads where status = 0"
        ).fetchone()
        if latest is not None:
            out[schema] = latest
    return out


def rows_loaded_since(before: dict[str, str]) -> list[tuple[str, str, int]]:
    """(schema, table, rows) written by loads committed after ``before`` (per-schema newest load ids).

    Merge loads rewrite a changed row with the new load id, so this counts new and changed rows:
    what an incremental run actually moved.
    """
    out: list[tuple[str, str, int]] = []
    with _connect() as con:
        for schema in sorted(_committed_loads(con)):
            tables = con.execute(
                "select table_name from information_schema.columns where table_schema = ? "
                "and column_name = '_dlt_load_id' order by table_name",
                [schema],
            ).fetchall()
            since = before.get(schema, "")
            for (table,) in tables:
                if table.startswith("_dlt"):  # dlt's own bookkeeping (pipeline state), not data
                    continue
                (rows,) = con.execute(
                    f"select count(*) from {quote_ident(schema)}.{quote_ident(table)} "
                    f"where _dlt_load_id > ? and _dlt_load_id in "
                    f"(select load_id from {quote_ident(schema)}._dlt_loads where status = 0)",
                    [since],
                ).fetchone()
                out.append((schema, table, int(rows)))
    return out
