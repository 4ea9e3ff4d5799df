"""Append a micro-batch to ``raw_events.events`` in one DuckDB transaction, writing what dlt would write.

Why not ``pipeline.run`` for every batch: for a few dozen rows dlt's extract → normalize → load spends
its time resolving configuration, writing and moving package files, opening and checkpointing the
warehouse, and saving its trace, not moving data; at one batch a second that is most of the stream's
CPU and a large share of its latency (figures in docs/stream.md, "Measured"). The rows themselves are
already conformed Arrow with the batch loader's columns and types.

What one transaction writes, exactly the three things a committed dlt load of the events resource
leaves (so ``python -m extract events``, the readers that filter on committed loads, and dlt's own
state restore see an ordinary dlt load):

* the rows above the committed ``last_id``, with ``_dlt_load_id`` = a new dlt load id
  (``create_load_id``), into the columns of the table dlt created (an Arrow column the table does not
  have means the schema would have to evolve: that batch goes through dlt);
* a ``_dlt_pipeline_state`` row: the warehouse's newest committed state of pipeline
  ``extract_events`` with ``last_id`` advanced, version bumped and encoded by dlt's own functions
  (``bump_pipeline_state_version_if_modified``, ``state_doc``);
* a ``_dlt_loads`` row with status 0 and the schema's current version hash.

Exactly once: the position is read from the warehouse's newest *committed* state inside the same
transaction that advances it, so rows and cursor commit together or not at all (a kill -9 anywhere
leaves the transaction uncommitted, and DuckDB's WAL replay drops it). The local ``state.json`` is not
touched; it simply falls behind, and dlt restores the newer warehouse state at the next dlt run (its
sync restores a destination state of a higher version; ``raw.RawLoader`` forces that sync before any
later dlt commit of its own). A package another run left pending is finished through dlt first
(``RawLoader.finish_pending``), as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.pipeline import TPipelineState
from dlt.common.storages.load_package import create_load_id
from dlt.common.utils import uniq_id_base64
from dlt.common.versioned_state import decompress_state
from dlt.pipeline.state_sync import (
    PIPELINE_STATE_ENGINE_VERSION,
    bump_pipeline_state_version_if_modified,
    state_doc,
)

from core.checksums import quote_ident

LOAD_ID = "_dlt_load_id"
STATE_TABLE = "_dlt_pipeline_state"
LOADS_TABLE = "_dlt_loads"


@dataclass
class DirectOutcome:
    rows: int
    committed_before: int
    committed_after: int
    load_id: str | None


class NotDirect(Exception):
    """This batch cannot be appended directly (the caller uses dlt); the message says why."""


def _resource_state(state: dict[str, Any], source: str, resource: str) -> dict[str, Any]:
    return (
        state.setdefault("sources", {})
        .setdefault(source, {})
        .setdefault("resources", {})
        .setdefault(resource, {})
    )


def committed_state(
    con: duckdb.DuckDBPyConnection, dataset: str, pipeline_name: str
) -> tuple[TPipelineState, str | None]:
    """The warehouse's newest committed pipeline state (the one dlt would restore) and the schema version
    hash of the newest committed load. Raises ``NotDirect`` when there is none or dlt's engine changed."""
    try:
        row = con.execute(
            f"select s.state, s.engine_version from {quote_ident(dataset)}.{STATE_TABLE} as s"
            f" join {quote_ident(dataset)}.{LOADS_TABLE} as l on l.load_id = s._dlt_load_id"
            " where s.pipeline_name = ? and l.status = 0 order by l.load_id desc limit 1",
            [pipeline_name],
        ).fetchone()
    except duckdb.CatalogException as exc:
        raise NotDirect("the warehouse has no dlt tables yet") from exc
    if row is None:
        raise NotDirect("the warehouse holds no committed state of this pipeline yet")
    if int(row[1]) != PIPELINE_STATE_ENGINE_VERSION:
        raise NotDirect(f"state engine version {row[1]}, dlt writes {PIPELINE_STATE_ENGINE_VERSION}")
    state: TPipelineState = decompress_state(row[0])  # type: ignore[assignment]
    hashes = con.execute(
        f"select schema_version_hash from {quote_ident(dataset)}.{LOADS_TABLE}"
        " where schema_name = ? and status = 0 order by load_id desc limit 1",
        [state.get("default_schema_name") or ""],
    ).fetchone()
    return state, (hashes[0] if hashes else None)


def table_columns(con: duckdb.DuckDBPyConnection, dataset: str, table: str) -> list[str]:
    rows = con.execute(
        "select column_name from information_schema.columns where table_catalog = current_database()"
        " and table_schema = ? and table_name = ? order by ordinal_position",
        [dataset, table],
    ).fetchall()
    return [r[0] for r in rows]


def append(
    con: duckdb.DuckDBPyConnection,
    table: pa.Table,
    *,
    dataset: str,
    pipeline_name: str,
    source: str,
    resource: str,
    table_name: str,
    key: str,
) -> DirectOutcome:
    """Append ``table``'s rows above the committed ``last_id`` with the advanced state, in one transaction.

    The caller holds the warehouse lock and has finished any pending dlt package."""
    con.execute("begin transaction")
    try:
        state, schema_hash = committed_state(con, dataset, pipeline_name)
        cursor = _resource_state(state, source, resource)  # type: ignore[arg-type]
        before = int(cursor.get("last_id") or 0)
        fresh = table.filter(pc.greater(table.column(key), before)) if table.num_rows else table
        if fresh.num_rows == 0:
            con.execute("rollback")
            return DirectOutcome(0, before, before, None)
        columns = table_columns(con, dataset, table_name)
        missing = [c for c in fresh.column_names if c not in columns]
        if not columns or LOAD_ID not in columns or missing:
            raise NotDirect(f"{dataset}.{table_name} lacks column(s) {missing or [LOAD_ID]}: dlt evolves it")
        load_id = create_load_id()
        after = int(pc.max(fresh.column(key)).as_py())
        cursor["last_id"] = after
        state["_local"] = {}  # type: ignore[typeddict-unknown-key]
        bump_pipeline_state_version_if_modified(state)
        doc = state_doc(state, load_id)
        names = ", ".join(quote_ident(c) for c in fresh.column_names)
        con.register("stream_batch_rows", fresh)
        try:
            con.execute(
                f"insert into {quote_ident(dataset)}.{quote_ident(table_name)}"
                f" ({names}, {quote_ident(LOAD_ID)}) select {names}, ? from stream_batch_rows",
                [load_id],
            )
        finally:
            con.unregister("stream_batch_rows")
        state_columns = set(table_columns(con, dataset, STATE_TABLE))
        values = {k: v for k, v in doc.items() if k in state_columns}
        if "_dlt_id" in state_columns:
            values["_dlt_id"] = uniq_id_base64(10)
        con.execute(
            f"insert into {quote_ident(dataset)}.{STATE_TABLE} ({', '.join(quote_ident(k) for k in values)})"
            f" values ({', '.join('?' for _ in values)})",
            list(values.values()),
        )
        con.execute(
            f"insert into {quote_ident(dataset)}.{LOADS_TABLE} (load_id, schema_name, status, inserted_at,"
            " schema_version_hash) values (?, ?, 0, now(), ?)",
            [load_id, state.get("default_schema_name"), schema_hash],
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return DirectOutcome(fresh.num_rows, before, after, load_id)
