"""``python -m extract --recover``: discard an unfinished full refresh, abort pending load packages (the
state rewinds), then say what ``raw_<service>`` holds and where the next run starts."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import dlt
import duckdb

from core import ops_fallback, ops_log
from core.lock import warehouse_lock
from extract.pipelines import connect_warehouse, cursor_positions, make_pipeline
from extract.refresh import Refresh, describe_rows, package_rows
from extract.sources import SERVICES
from extract.spec import Service

log = logging.getLogger("extract")
EXIT_FAILED = 1


def committed_rows(cursor: duckdb.DuckDBPyConnection, dataset: str) -> dict[str, int]:
    """Rows per data table of ``dataset`` that belong to committed loads (what staging reads)."""
    tables = [
        r[0]
        for r in cursor.execute(
            "select table_name from duckdb_tables() where database_name = current_database()"
            " and schema_name = ? order by 1",
            [dataset],
        ).fetchall()
    ]
    if "_dlt_loads" not in tables:
        return {}
    schema = '"' + dataset.replace('"', '""') + '"'
    return {
        table: cursor.execute(
            f'select count(*) from {schema}."{table}" where _dlt_load_id in'
            f" (select load_id from {schema}._dlt_loads where status = 0)"
        ).fetchone()[0]
        for table in tables
        if not table.startswith("_dlt")
    }


def lost_rows(pipeline: dlt.Pipeline, service: Service, rows: dict[str, int]) -> list[str]:
    """Tables whose cursor says records were loaded but which hold no committed row (rows lost)."""
    source = (pipeline.state.get("sources") or {}).get(service.name) or {}
    digests = source.get("snapshot_digests") or {}
    lost = []
    for ep in service.endpoints:
        state = (source.get("resources") or {}).get(ep.name) or {}
        position = state.get("last_value", state.get("last_id"))
        said = f"its cursor says records up to {position}" if position else "its snapshot digest says rows"
        if (position or ep.name in digests) and not rows.get(ep.name):
            lost.append(
                f"ROWS LOST: raw_{service.name}.{ep.name} holds no committed row but {said} were loaded:"
                f" run `python -m extract --full-refresh {service.name}` to reload them"
            )
    return lost


def recover_service(service: Service, connection: duckdb.DuckDBPyConnection) -> tuple[list[str], bool]:
    """Discard an unfinished full refresh, abort pending load packages (the state rewinds), then say what
    ``raw_<service>`` holds and where the next run starts. False when raw has lost rows."""
    name = service.name
    lines = []
    left = Refresh.of(name).discard()
    if left:
        lines.append(f"discarded an unfinished full refresh ({left}); it never touched raw_{name}")
    pipeline = make_pipeline(name, connection)
    plan = pipeline.abort_packages(dry_run=True)
    if plan is None:
        lines.append("no pending load package")
    else:
        pending = package_rows(Path(pipeline.working_dir))
        first = [plan["package_to_abort"]["load_id"]] if plan["package_to_abort"] else []
        ids = sorted({*first, *plan["packages_to_delete"], *plan["extracted_packages_to_delete"]})
        pipeline.abort_packages()
        aborted = ", ".join(f"{i} ({describe_rows(pending.get(i, {}))})" for i in ids)
        lines.append(
            f"aborted pending package(s) {aborted}: not loaded; the state rewound to before"
            f" {plan['restore_from_load_id']}, so the next run extracts those records again"
        )
    rows = committed_rows(connection, f"raw_{name}")
    lines.append(f"raw_{name} holds {describe_rows(rows) if rows else 'no table'} (committed loads)")
    positions = cursor_positions(pipeline)
    lines.append(
        f"the next run continues from cursors {positions}" if positions else "the next run loads everything"
    )
    lost = lost_rows(pipeline, service, rows)
    return [f"{name}: {line}" for line in lines + lost], not lost


def recover(names: list[str], wait: float | None = None, command: str | None = None) -> int:
    """``--recover``: each service's recovery and what it leaves, one log line per fact; exit 1 when a
    raw table lost rows (never reported as recovered).

    Recorded in ``ops.runs`` as step ``recover`` (``command``: the command line), its facts as
    ``run_inputs`` (kind ``recover``): the run log shows which run aborted which packages."""
    healthy = True
    facts: list[tuple[str, str, str | None]] = []
    run_log = ops_log.new_run(
        command or shlex.join(["python", "-m", "extract", "--recover", *names]), "recover"
    )
    with ops_fallback.kept_on_failure(run_log), warehouse_lock("extract --recover", wait=wait):
        con = connect_warehouse()
        try:
            ops_fallback.save(con, run_log)  # `running`
            try:
                for name in names or list(SERVICES):
                    with con.cursor() as cursor:
                        lines, ok = recover_service(SERVICES[name], cursor)
                    healthy &= ok
                    for line in lines:
                        (log.info if ok or "ROWS LOST" not in line else log.error)("recover: %s", line)
                        facts.append(("recover", name, line))
            except BaseException as exc:  # the row must not stay "running"
                status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                why = str(exc) if isinstance(exc, KeyboardInterrupt) else ops_fallback.reason(exc)
                ops_fallback.save(con, ops_log.finish(run_log, status, None, why or status, inputs=facts))
                raise
            lost = "; ".join(line for *_, line in facts if line and "ROWS LOST" in line) or None
            ops_fallback.save(
                con, ops_log.finish(run_log, "success" if healthy else "failed", None, lost, inputs=facts)
            )
        finally:
            con.close()
    return 0 if healthy else EXIT_FAILED
