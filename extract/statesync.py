"""Skip dlt's state/schema sync with the warehouse when the local state is provably the current one.

Why: before every run dlt "syncs" the pipeline with its destination - it opens a job client (a full
configuration resolution), checks the dataset exists, reads the newest committed state row, and
compares schemas - even when the working folder already holds exactly what the warehouse holds, which
is the normal case (the state travels inside each load package and advances only when it commits).
That is a fixed cost per service and run (py-spy: ~0.05-0.1 s each), a visible share of a run that
loads little. Here one query on the run's own connection answers the question dlt's sync asks: is the
newest committed state row in the warehouse the local state (same version and hash), and are its
schemas present locally? Only then is the sync skipped; any doubt (no row, a newer or different
state, a missing table or schema, a pending package) leaves it to dlt exactly as before.
"""

from __future__ import annotations

import logging

import dlt
import duckdb

log = logging.getLogger("extract.statesync")


def local_state_is_current(pipeline: dlt.Pipeline, cursor: duckdb.DuckDBPyConnection) -> bool:
    """True when the warehouse's newest committed state of ``pipeline`` equals its local state."""
    if pipeline.first_run or not pipeline.has_data:
        return False
    state = pipeline.state
    version, version_hash = state.get("_state_version"), state.get("_version_hash")
    names = state.get("schema_names") or []
    if version is None or not version_hash or not names:
        return False
    if not all(pipeline._schema_storage.has_schema(name) for name in names):
        return False
    dataset = pipeline.dataset_name.replace('"', '""')
    try:
        row = cursor.execute(
            f'select s.version, s.version_hash from "{dataset}"."_dlt_pipeline_state" as s'
            f' join "{dataset}"."_dlt_loads" as l on l.load_id = s._dlt_load_id'
            " where s.pipeline_name = ? and l.status = 0 order by l.load_id desc limit 1",
            [pipeline.pipeline_name],
        ).fetchone()
    except duckdb.Error:  # no dataset / no state table yet: dlt's sync handles it
        return False
    return row is not None and row[0] == version and row[1] == version_hash


def skip_sync_if_current(pipeline: dlt.Pipeline, cursor: duckdb.DuckDBPyConnection) -> bool:
    """Mark the pipeline as already synced when its local state is the warehouse's; returns whether it did.

    ``_state_restored`` is the flag ``Pipeline.run`` sets after its own sync ("sync only once"); setting
    it is the only way to skip the sync without also turning off ``restore_from_destination``, which
    would stop dlt from putting the state into the load package.
    """
    if local_state_is_current(pipeline, cursor):
        pipeline._state_restored = True
        log.debug(
            "%s: local state is the warehouse's; dlt's destination sync skipped", pipeline.pipeline_name
        )
        return True
    return False
