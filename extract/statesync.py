"""Keep each pipeline's local dlt state in step with *this* warehouse, cheaply and without silent loss.

Two jobs, answered by a query or two on the run's own connection:

* **Skip dlt's sync when the local state is provably the warehouse's.** Before every run dlt "syncs"
  the pipeline with its destination - a job client (a full configuration resolution), a dataset check,
  the newest committed state row, a schema comparison - even when the working folder already holds
  exactly what the warehouse holds, the normal case (the state travels inside each load package and
  advances only when it commits). That is a fixed cost per service and run (seen in py-spy profiles).
  When the newest committed state row equals the local state (version and hash) and its schemas are
  present locally, the sync is skipped.

* **Drop a local state that is ahead of the warehouse.** dlt's sync restores from the destination only
  when the destination's state version is the same or newer; a local state with a *higher* version is
  kept. With no package pending, that can only mean the local folder belongs to another warehouse (a
  warehouse file swapped or restored from a backup, two warehouses sharing one run folder): keeping
  it would resume the cursors where the other warehouse stopped and silently skip every record in
  between (seen in the benchmark: a stream started on a copied warehouse skipped 132 events). Such a
  local state is dropped, and dlt's sync then restores the warehouse's own state, or starts from
  nothing when the warehouse has none.

Any other doubt (a pending package, an older local state, no dataset yet) is left to dlt as before.
"""

from __future__ import annotations

import logging

import dlt
import duckdb

from extract import dltcompat

log = logging.getLogger("extract.statesync")


def _newest_committed_state(pipeline: dlt.Pipeline, cursor: duckdb.DuckDBPyConnection) -> tuple | None:
    """(version, version_hash) of the warehouse's newest committed state of ``pipeline``, or None when it
    has none. Raises ``duckdb.Error`` while the dataset has no dlt tables yet (the callers decide)."""
    dataset = pipeline.dataset_name.replace('"', '""')
    return cursor.execute(
        f'select s.version, s.version_hash from "{dataset}"."_dlt_pipeline_state" as s'
        f' join "{dataset}"."_dlt_loads" as l on l.load_id = s._dlt_load_id'
        " where s.pipeline_name = ? and l.status = 0 order by l.load_id desc limit 1",
        [pipeline.pipeline_name],
    ).fetchone()


def _dataset_exists(pipeline: dlt.Pipeline, cursor: duckdb.DuckDBPyConnection) -> bool:
    row = cursor.execute(
        "select count(*) from information_schema.schemata where schema_name = ?", [pipeline.dataset_name]
    ).fetchone()
    return bool(row and row[0])


def local_state_is_current(pipeline: dlt.Pipeline, cursor: duckdb.DuckDBPyConnection) -> bool:
    """True when the warehouse's newest committed state of ``pipeline`` equals its local state."""
    if pipeline.first_run or not pipeline.has_data:
        return False
    state = pipeline.state
    version, version_hash = state.get("_state_version"), state.get("_version_hash")
    names = state.get("schema_names") or []
    if version is None or not version_hash or not names:
        return False
    if not all(dltcompat.has_local_schema(pipeline, name) for name in names):
        return False
    try:
        row = _newest_committed_state(pipeline, cursor)
    except duckdb.Error:  # no dataset / no state table yet: dlt's sync handles it
        return False
    return row is not None and row[0] == version and row[1] == version_hash


def local_state_is_ahead(pipeline: dlt.Pipeline, cursor: duckdb.DuckDBPyConnection) -> str | None:
    """Why the local state cannot be this warehouse's (it is newer than anything the warehouse
    committed and no pending package explains it), or None when it may be."""
    if pipeline.first_run or pipeline.has_pending_data:
        return None
    local = pipeline.state.get("_state_version")
    if local is None or not _dataset_exists(pipeline, cursor):
        return None  # no dataset: dlt's sync wipes the local state itself
    try:
        row = _newest_committed_state(pipeline, cursor)
    except duckdb.Error:
        row = None
    if row is None:
        return f"local state version {local}, the warehouse has no committed state for this pipeline"
    if local > row[0]:
        return f"local state version {local}, the warehouse's newest committed state is version {row[0]}"
    return None


def align_with_warehouse(pipeline: dlt.Pipeline, cursor: duckdb.DuckDBPyConnection) -> dlt.Pipeline:
    """The pipeline, ready for dlt's own sync with the warehouse ``cursor`` is connected to.

    Marks it synced when the local state is provably the warehouse's; drops a local state that is ahead
    of the warehouse (see the module docstring) so that dlt's sync restores the warehouse's own.
    """
    if local_state_is_current(pipeline, cursor):
        dltcompat.mark_state_restored(
            pipeline
        )  # what Pipeline.run sets after its own sync ("sync only once")
        log.debug("%s: local state is the warehouse's; dlt's sync skipped", pipeline.pipeline_name)
        return pipeline
    why = local_state_is_ahead(pipeline, cursor)
    if why:
        log.warning(
            "%s: the local dlt state is not this warehouse's (%s): dropping it and restoring the"
            " warehouse's own state (was the warehouse file replaced or restored, or is the run folder"
            " shared with another warehouse?)",
            pipeline.pipeline_name,
            why,
        )
        pipeline.drop()
    return pipeline
