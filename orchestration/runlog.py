"""Links from a Dagster run to the project's own run log (``ops.runs``), and table sizes for metadata.

Every step the orchestrator runs goes through the flow's logged steps (core/steps.py), which write
``ops.runs`` rows with the step's command. The orchestrator makes that command name the Dagster run
(``dagster run 1a2b3c4d (batch): extract orders``), so the ops row of any Dagster step is found by its
command, and SQL on ``ops.runs`` finds the Dagster run behind any row.

Reading needs the warehouse, which one writer at a time may hold: the lookup takes the lock with a
short wait and gives up quietly (metadata is a courtesy; a step never fails for it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import dagster as dg
import duckdb

from core import lock, settings
from core.checksums import quote_ident

log = logging.getLogger("orchestration.runlog")

LOOKUP_WAIT = 30.0


AnyContext = dg.OpExecutionContext | dg.AssetExecutionContext | dg.AssetCheckExecutionContext


def op_context(context: AnyContext) -> dg.OpExecutionContext:
    """The op context behind an asset or asset-check context (which do not all carry the run's id)."""
    return context if isinstance(context, dg.OpExecutionContext) else context.op_execution_context


def command(context: AnyContext, what: str) -> str:
    """The command recorded in ``ops.runs`` for ``what`` (a step) of this Dagster run."""
    op = op_context(context)
    return f"dagster run {op.run_id[:8]} ({op.job_name}): {what}"


@dataclass
class Found:
    """What the warehouse says about a finished step: its ops rows and the tables' current sizes."""

    run_ids: list[str] = field(default_factory=list)
    rows: dict[tuple[str, str], int] = field(default_factory=dict)


def lookup(step_command: str, tables: list[tuple[str, str]] = ()) -> Found:
    """The ``ops.runs`` ids written under ``step_command`` and the committed row count of each table
    (dlt tables count only rows of committed loads, as staging reads them)."""
    found = Found()
    path = settings.warehouse_path()
    if not path.exists():
        return found
    try:
        with (
            lock.warehouse_lock("orchestrator: read ops.runs", wait=LOOKUP_WAIT),
            duckdb.connect(str(path), read_only=True) as con,
        ):
            found.run_ids = [
                r[0]
                for r in con.execute(
                    "select run_id from ops.runs where command = ? order by started_at", [step_command]
                ).fetchall()
            ]
            for schema, table in tables:
                found.rows[(schema, table)] = _count(con, schema, table)
    except (lock.WarehouseBusy, duckdb.Error, OSError) as exc:
        log.warning("could not read ops.runs for the run's metadata: %s", exc)
    return found


def _count(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> int | None:
    columns = {
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchall()
    }
    if not columns:
        return None
    relation = f"{quote_ident(schema)}.{quote_ident(table)}"
    if "_dlt_load_id" in columns:
        loads = f"{quote_ident(schema)}._dlt_loads"
        committed = f"select load_id from {loads} where status = 0"
        sql = f"select count(*) from {relation} where _dlt_load_id in ({committed})"
    else:
        sql = f"select count(*) from {relation}"
    return int(con.execute(sql).fetchone()[0])


def ops_metadata(run_ids: list[str]) -> dict[str, dg.MetadataValue]:
    """Metadata pointing at the ops rows: their ids and the query that shows them."""
    if not run_ids:
        return {}
    ids = ", ".join(f"'{r}'" for r in run_ids)
    return {
        "ops_run_id": dg.MetadataValue.text(run_ids[-1]),
        "ops_rows": dg.MetadataValue.md(
            f"```sql\nselect * from ops.runs where run_id in ({ids});\n"
            f"select * from ops.run_tables where run_id in ({ids});\n```"
        ),
    }


def tag_run(context: AnyContext, values: dict[str, object]) -> None:
    """Add ``shop/<name>`` tags to the run (shown in the run list: rows loaded, dbt nodes, export)."""
    op = op_context(context)
    op.instance.add_run_tags(op.run_id, {f"shop/{k}": str(v) for k, v in values.items()})
