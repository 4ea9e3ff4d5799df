"""Finish the load packages a killed run left so that no row loads twice and the cursor is the warehouse's
(the batch loader's ``prepare_pipeline`` and the stream's raw loader both call ``finish_pending``).

Why our own code around dlt's resume: dlt 1.31 finishes a pending package at least once, not exactly
once. Three moments of a kill -9 make it load or record something twice; each was reproduced by
killing a real ``python -m elt stream`` there (tests/pytest/stream/test_stream_resume.py):

1. **A job's INSERT committed, its outcome was not recorded yet.** dlt records a finished job in a
   "pending transition" file only after the job's connection closed (which, on the last borrowed
   connection, checkpoints the WAL: the widest of the three windows). Killed in between, the job stays
   in ``started_jobs`` without that record and the next run executes it again: an append table gets
   the file's rows a second time, under the same load id. The same happens to a job retried after its
   INSERT committed (a close that failed, e.g. on a full disk). Here: before dlt resumes, the rows
   such a job may already have written (its load id and the file's primary keys) are deleted, so dlt's
   re-run writes them exactly once.
2. **Extract committed the package, the pipeline state was not saved yet.** dlt commits the package
   (rows plus the advanced cursor) and only then writes ``state.json``. Killed in between, the package
   loads on the next run but the local state keeps the old cursor - dlt never updates it from the
   package - so the next extract starts from the old cursor and loads the package's rows again. Here:
   after the pending packages load, a warehouse state newer than the local one is restored
   (``sync_destination``).
3. **The package's ``_dlt_loads`` row was written, the package was not moved to ``loaded`` yet.** dlt
   completes the package again on the next run: a second ``_dlt_loads`` row for one load. Here: such a
   package is moved to ``loaded`` as dlt would have done, without writing anything to the warehouse.

Only append tables are repaired in (1): a merge or replace job writes into the staging dataset or a
truncated table, so running it again is already idempotent.
"""

from __future__ import annotations

import logging
from typing import Any

import dlt
import duckdb
import pyarrow.parquet as pq
from dlt.common.schema import Schema
from dlt.common.schema.utils import get_columns_names_with_prop, get_write_disposition
from dlt.common.storages.load_package import PackageStorage, ParsedLoadJobFileName

from core.checksums import quote_ident
from extract import dltcompat
from extract.pending import drop_normalized_duplicates

log = logging.getLogger("extract.resume")

LOAD_ID_COLUMN = "_dlt_load_id"


def _table_columns(con: duckdb.DuckDBPyConnection, dataset: str, table: str) -> set[str]:
    """Columns of ``dataset.table`` in the warehouse (empty when the table does not exist yet)."""
    rows = con.execute(
        "select column_name from information_schema.columns "
        "where table_catalog = current_database() and table_schema = ? and table_name = ?",
        [dataset, table],
    ).fetchall()
    return {r[0] for r in rows}


def _jobs_of_table(packages: PackageStorage, load_id: str, table: str) -> int:
    """How many job files of ``table`` the package holds, in any state."""
    return len(packages.list_job_with_states_for_table(load_id, table))


def _identity(schema: Schema, table: str, file_format: str, path: str, columns: set[str]) -> list[str]:
    """Columns that tell one job file's rows from the other files' of ``table`` in the same package:
    the primary key, else dlt's row id; empty when the file is not Parquet or lacks them."""
    if file_format != "parquet":
        return []
    in_file = set(pq.read_schema(path).names)
    keys = get_columns_names_with_prop(schema.tables[table], "primary_key") or ["_dlt_id"]
    return keys if set(keys) <= in_file & columns else []


def _undo_job(
    con: duckdb.DuckDBPyConnection,
    packages: PackageStorage,
    schema: Schema,
    dataset: str,
    load_id: str,
    job_path: str,
) -> int:
    """Delete the rows a job about to run again may already have committed; returns how many.

    A job's rows are found by its load id and, when the package holds other files of the same table,
    by the keys in its Parquet file (``_identity``). An INSERT of one file is all or nothing, so the
    rows found are either all of the file's or none."""
    job = ParsedLoadJobFileName.parse(job_path)
    table = job.table_name
    if table not in schema.tables or get_write_disposition(schema.tables, table) != "append":
        return 0
    columns = _table_columns(con, dataset, table)
    if LOAD_ID_COLUMN not in columns:  # no table yet (its first load), or rows without a load id
        return 0
    target = f"{quote_ident(dataset)}.{quote_ident(table)}"
    if _jobs_of_table(packages, load_id, table) == 1:
        where, params = f"{LOAD_ID_COLUMN} = ?", [load_id]
    else:
        path = packages.storage.make_full_path(job_path)
        keys = _identity(schema, table, job.file_format, path, columns)
        if not keys:
            log.warning(
                "%s: job %s of package %s may have committed before the kill and cannot be told apart"
                " from the package's other files of %s (no primary key or _dlt_id in a Parquet file);"
                " dlt loads it again, check %s for duplicates",
                dataset,
                job.job_id(),
                load_id,
                table,
                table,
            )
            return 0
        names = ", ".join(quote_ident(k) for k in keys)
        where = f"{LOAD_ID_COLUMN} = ? and ({names}) in (select {names} from read_parquet(?))"
        params = [load_id, path]
    (found,) = con.execute(f"select count(*) from {target} where {where}", params).fetchone()
    if found:
        con.execute(f"delete from {target} where {where}", params)
        log.warning(
            "%s: job %s of package %s had committed %d row(s) to %s before the run was killed;"
            " removed them so that finishing the package loads them once",
            dataset,
            job.job_id(),
            load_id,
            found,
            table,
        )
    return int(found)


def _committed_load_ids(con: duckdb.DuckDBPyConnection, dataset: str, load_ids: list[str]) -> set[str]:
    """Which of ``load_ids`` already have a ``_dlt_loads`` row in ``dataset``."""
    if not load_ids or "load_id" not in _table_columns(con, dataset, "_dlt_loads"):
        return set()
    marks = ", ".join("?" for _ in load_ids)
    rows = con.execute(
        f"select distinct load_id from {quote_ident(dataset)}._dlt_loads where load_id in ({marks})", load_ids
    ).fetchall()
    return {r[0] for r in rows}


def repair_pending(pipeline: dlt.Pipeline, con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Make the normalized packages safe to resume (moments 1 and 3 of the module docstring).

    Returns what was done: rows deleted per load id, load ids moved to ``loaded``."""
    done: dict[str, Any] = {"undone_rows": {}, "completed": []}
    load_storage = dltcompat.load_storage(pipeline)
    packages = load_storage.normalized_packages
    normalized = [i for i in pipeline.list_normalized_load_packages() if not packages.has_abort_flag(i)]
    if not normalized:
        return done
    dataset = pipeline.dataset_name
    committed = _committed_load_ids(con, dataset, normalized)
    for load_id in normalized:
        if load_id in committed:
            unfinished = packages.list_new_jobs(load_id) or packages.list_started_jobs(load_id)
            if unfinished:  # dlt writes _dlt_loads only after every job: not a state a kill leaves
                raise RuntimeError(
                    f"{dataset}: load package {load_id} is committed in _dlt_loads but has unfinished"
                    " jobs; run `python -m extract --recover` to abort it"
                )
            log.warning(
                "%s: load package %s was committed before the run was killed; archiving it without"
                " loading it again",
                dataset,
                load_id,
            )
            load_storage.complete_load_package(load_id, aborted=False)
            load_storage.maybe_remove_completed_jobs(load_id)
            done["completed"].append(load_id)
            continue
        retried = packages.list_retried_new_jobs(load_id)
        if not retried:
            continue
        schema = packages.load_schema(load_id)
        undone = sum(_undo_job(con, packages, schema, dataset, load_id, path) for path, _state in retried)
        if undone:
            done["undone_rows"][load_id] = undone
    return done


def _state_version(pipeline: dlt.Pipeline) -> int:
    return int(pipeline.state.get("_state_version") or 0)


def finish_pending(pipeline: dlt.Pipeline) -> bool:
    """Load every package a crashed run left, exactly once, and leave the local state equal to the
    warehouse's. Returns whether dlt loaded something (then ``pipeline.last_trace`` describes it).
    The caller holds the warehouse lock."""
    drop_normalized_duplicates(pipeline)  # a kill inside normalize's commit (extract/pending.py)
    if not pipeline.has_pending_data:
        return False
    with pipeline.sql_client() as client:
        repair_pending(pipeline, client.native_connection)
    loaded = pipeline.has_pending_data  # false when the only package was already committed (moment 3)
    if loaded:
        log.warning("%s: finishing a pending load package left by an interrupted run", pipeline.pipeline_name)
        pipeline.run()
    local = _state_version(pipeline)
    pipeline.sync_destination()  # moment 2: the package carried a state newer than state.json
    if _state_version(pipeline) != local:
        log.warning(
            "%s: the pipeline state was not saved before the run was killed; restored the warehouse's"
            " (version %d, local copy had %d)",
            pipeline.pipeline_name,
            _state_version(pipeline),
            local,
        )
    return loaded
