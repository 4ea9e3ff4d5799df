"""One ``ops.runs`` row per micro-batch (via ``core.ops_log``) plus its details in ``ops.stream_batches``.

``ops.runs`` has the columns every step shares (rows, status, error, start and finish); a batch's
ids, lag, phase timings and latency do not fit there, so they go to a stream-only table keyed by the
same ``run_id``. The row is opened when the batch takes the lock and closed when it ends, so a batch
killed mid-commit is visible as ``running`` forever (and its events simply reloaded by the restart).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import duckdb

from core import ops_log, settings

COMMAND = "python -m elt stream"
STEP = "stream"

_DDL = """
create table if not exists {ops}.stream_batches (
    run_id varchar primary key,
    batch_no bigint not null,
    events bigint not null,
    skipped bigint not null,
    first_event_id bigint,
    last_event_id bigint,
    committed_id bigint,
    newest_seen_id bigint,
    lag_events bigint,
    close_reason varchar,
    lock_wait_s double,
    load_s double,
    dbt_s double,
    publish_s double,
    total_s double,
    latency_p50_s double,
    latency_max_s double,
    export_version varchar,
    status varchar not null
);
alter table {ops}.stream_batches add column if not exists latency_p95_s double;
alter table {ops}.stream_batches add column if not exists cpu_s double
"""


@dataclass
class BatchRow:
    batch_no: int
    events: int
    skipped: int
    first_event_id: int | None
    last_event_id: int | None
    committed_id: int
    newest_seen_id: int
    lag_events: int
    close_reason: str
    lock_wait_s: float
    load_s: float
    dbt_s: float
    publish_s: float
    total_s: float
    latency_p50_s: float | None
    latency_max_s: float | None
    export_version: str | None
    status: str
    latency_p95_s: float | None = None  # per event of the batch (the report plots p50 and p95 over time)
    cpu_s: float | None = None  # CPU seconds of the stream process during the commit (all its threads)


def _connect() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(settings.warehouse_path()))


def open_batch(batch_no: int, con: duckdb.DuckDBPyConnection | None = None) -> str:
    """Record the batch as ``running`` (on ``con`` when given); caller holds the warehouse lock."""
    if con is not None:
        return ops_log.start_run(con, f"{COMMAND} (batch {batch_no})", STEP)
    with _connect() as own:
        return ops_log.start_run(own, f"{COMMAND} (batch {batch_no})", STEP)


def close_batch(
    run_id: str, row: BatchRow, error: str | None = None, con: duckdb.DuckDBPyConnection | None = None
) -> None:
    """Finish the ``ops.runs`` row and write the batch details (on ``con`` when given); caller holds the
    warehouse lock."""
    if con is not None:
        _close_batch(con, run_id, row, error)
        return
    with _connect() as own:
        _close_batch(own, run_id, row, error)


def _close_batch(con: duckdb.DuckDBPyConnection, run_id: str, row: BatchRow, error: str | None) -> None:
    ops = ops_log.ensure_tables(con)
    con.execute(_DDL.format(ops=ops))
    ops_log.finish_run(con, run_id, row.status, row.events, error)
    values = asdict(row)
    names = ", ".join(["run_id", *values])
    marks = ", ".join("?" for _ in range(len(values) + 1))
    con.execute(
        f"insert or replace into {ops}.stream_batches ({names}) values ({marks})",
        [run_id, *values.values()],
    )
