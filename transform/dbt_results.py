"""dbt's per-node results of each invocation kept in ``ops.dbt_results``, next to the run that made them.

Why: ``target/run_results.json`` is overwritten by the next dbt command, so "which tests failed last
Tuesday, and how long did the marts take?" had no answer. The flow's dbt step and ``make dbt`` copy
it into the warehouse under their ``ops.runs`` id; the report's pipeline page reads it from there.

One row per node: status, seconds, failures, and for tests what kind of test it is (the generic
test's name from dbt's manifest, ``singular`` or ``unit``), so results can be grouped without parsing
names. Messages are not kept: a failing test's message can quote data values.

Writing is best effort (the step's outcome is dbt's exit code, not this bookkeeping): a warehouse that
cannot take the rows gets a warning. The caller holds the warehouse lock; dbt has exited.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import duckdb

from core import ops_log, settings
from transform import dbt_artifacts

log = logging.getLogger("elt.dbt_results")

TABLE = "dbt_results"
_DDL = """
create schema if not exists {ops};
create table if not exists {ops}.dbt_results (
    run_id varchar not null,
    invocation_id varchar,
    command varchar,
    generated_at timestamp with time zone,
    unique_id varchar not null,
    resource_type varchar not null,
    test_kind varchar,
    status varchar not null,
    execution_seconds double,
    failures bigint
);
"""


def _test_kinds(manifest_path: Path) -> dict[str, str]:
    """unique_id -> generic test name (``not_null``, ``relationships``, ...) or ``singular``."""
    try:
        nodes = json.loads(manifest_path.read_text()).get("nodes", {})
    except (OSError, ValueError):
        return {}
    kinds = {}
    for uid, node in nodes.items():
        if node.get("resource_type") == "test":
            kinds[uid] = (node.get("test_metadata") or {}).get("name") or "singular"
    return kinds


def rows(run_id: str, run_results: Path, manifest: Path | None = None) -> list[tuple[Any, ...]]:
    """The table's rows for one ``run_results.json``."""
    data = json.loads(run_results.read_text())
    metadata, args = data.get("metadata") or {}, data.get("args") or {}
    kinds = _test_kinds(manifest or run_results.with_name("manifest.json"))
    out = []
    for result in data.get("results") or []:
        uid = str(result.get("unique_id", ""))
        resource = uid.split(".", 1)[0]
        kind = {"unit_test": "unit", "test": kinds.get(uid, "singular")}.get(resource)
        failures = result.get("failures")
        out.append(
            (
                run_id,
                metadata.get("invocation_id"),
                args.get("which"),
                metadata.get("generated_at"),
                uid,
                resource,
                kind,
                str(result.get("status")),
                result.get("execution_time"),
                int(failures) if isinstance(failures, int) else None,
            )
        )
    return out


def record(run_id: str, run_results: Path | None = None) -> int:
    """Append the results of the dbt invocation that just ended (``run_results.json``) under ``run_id``;
    returns the rows written (0 when nothing could be read or written)."""
    path = run_results or dbt_artifacts.target_dir() / "run_results.json"
    try:
        found = rows(run_id, path)
    except (OSError, ValueError) as exc:
        log.warning("dbt results not kept in ops.%s: cannot read %s (%s)", TABLE, path, exc)
        return 0
    if not found:
        return 0
    try:
        with duckdb.connect(str(settings.warehouse_path())) as con:
            ops = ops_log.ensure_tables(con)
            con.execute(_DDL.format(ops=ops))
            con.execute(f"delete from {ops}.{TABLE} where run_id = ?", [run_id])  # a retried write: once
            con.executemany(f"insert into {ops}.{TABLE} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", found)
    except (duckdb.Error, OSError) as exc:
        log.warning("dbt results not kept in ops.%s: %s", TABLE, str(exc).splitlines()[0])
        return 0
    return len(found)
