"""``python -m extract``: load the services into ``raw_<service>`` under the warehouse lock.

One dlt pipeline per service (dataset ``raw_<service>``, working folder under ``run/dlt`` so it is
covered by the warehouse lock). A service that fails does not stop the others, but the run exits
non-zero, records the failure in ``ops.runs`` and leaves that service's incremental state where it
was. Erased keys (a deletions feed) and records that mark themselves deleted (``soft_delete``) are
removed after each load (extract/deletes.py). ``--full-refresh`` builds a first load aside and swaps it
in atomically (extract/refresh.py); ``--recover`` says what it aborted, what raw holds and where the
next run starts.

This module is the command line and the run (lock, run log, summary); the parts are in
extract/pipelines.py (building a service's pipeline), extract/loading.py (loading one service, its hard
deletes, a full refresh), extract/scheduling.py (serial, threads or forked children),
extract/recovery.py (``--recover``), extract/failures.py and extract/result.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from core import file_modes as private
from core import ops_fallback, ops_log, settings, signals, warehouse_check
from core.lock import WarehouseBusy, warehouse_lock
from extract import dltcompat, forked, horizon, probe, redact, tracebacks
from extract.errors import SourceFileError
from extract.failures import QuotedValueFilter
from extract.pipelines import connect_warehouse, skip_pandas_in_arrow
from extract.progress import summary_lines
from extract.result import RunResult, endpoint_rows, write_outcome
from extract.sources import SERVICES

log = logging.getLogger("extract")
EXIT_FAILED = 1
EXIT_BUSY = 3


def run(
    names: list[str], full_refresh: bool = False, wait: float | None = None, only_if_unchanged: bool = False
) -> RunResult | None:
    """Load ``names`` (all when empty) under the warehouse lock, logging the run to ``ops``.

    ``only_if_unchanged``: probe every service first (extract/probe.py) and, unless none has anything to
    load, return None having written nothing (the flow then starts the loader as a process of its own);
    when none has, the run is complete as it is. Why: the flow's no-change run then never starts a
    second interpreter nor builds a dlt pipeline."""
    services = [SERVICES[n] for n in (names or list(SERVICES))]
    label = " ".join(s.name for s in services)
    result = RunResult()
    started = time.monotonic()
    # what changes the run (full refresh, services) is in its recorded command: the log shows which run
    # wiped a table (new_run scrubs it)
    flags = "--full-refresh " if full_refresh else ""
    run_log = ops_log.new_run(f"python -m extract {flags}{label}", "extract")
    # a warehouse that cannot be locked, opened or written fails the run; its row is kept, not lost
    with ops_fallback.kept_on_failure(run_log), warehouse_lock(f"extract {label}", wait=wait):
        # one connection for the whole run (ops log and every service's load; see make_pipeline),
        # opened and closed inside the lock
        con = connect_warehouse()
        try:
            run_id = run_log.run_id
            result.cutoff = datetime.now(UTC)  # before any request: one cutoff for every service
            # a service with nothing new is not loaded at all (extract/probe.py); a full refresh
            # reloads regardless
            todo = (
                services if full_refresh else probe.skip_unchanged(services, con, result, only_if_unchanged)
            )
            if todo and only_if_unchanged:
                return None
            ops_fallback.save(con, run_log)  # `running`, after any rows earlier runs could not write
            try:
                if todo:
                    from extract.scheduling import run_services  # dlt's pipelines: only when loading

                    run_services(todo, full_refresh, result, con)
                signals.raise_if_stopping()  # a stop the services' threads saw ends the run as interrupted
                # after the loads committed, for the services that did not fail (dbt's consistent cut)
                horizon.record_loaded(con, (s.name for s in services), result.failures, result.cutoff, run_id)
            except BaseException as exc:  # Ctrl-C / SIGTERM, a failed write: the row must not stay "running"
                if isinstance(exc, KeyboardInterrupt):
                    status, why = "interrupted", str(exc) or type(exc).__name__
                else:
                    status, why = "failed", ops_fallback.reason(exc)
                ops_fallback.save(con, ops_log.finish(run_log, status, result.rows, why))
                raise
            result.seconds = time.monotonic() - started
            run_log.tables = [(src, table, n) for (src, table), n in sorted(result.table_rows.items())]
            run_log.inputs = [("source", name, detail) for name, detail in sorted(result.inputs.items())]
            run_log.endpoints = endpoint_rows(result)
            error = "; ".join(f"{k}: {v}" for k, v in result.failures.items()) or None
            ops_log.finish(run_log, "failed" if result.failures else "success", result.rows, error)
            ops_fallback.save(con, run_log)
        finally:
            con.close()
    for line in summary_lines(result.table_rows, result.seconds, result.failures):
        log.info("summary: %s", line)
    return result


def setup_logging(level: str) -> None:
    """Timestamped lines on stderr, with secrets masked in every record (ours, dlt's, urllib3's)."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level.upper())
    tracebacks.install(logging.getLogger("dlt"))  # one line per retried job, not a traceback each
    redact.install(logging.getLogger("dlt"))
    dlt_logger = logging.getLogger("dlt")
    if not any(isinstance(f, QuotedValueFilter) for f in dlt_logger.filters):
        dlt_logger.addFilter(QuotedValueFilter())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m extract", description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", help="services to load (default: every file of sources/)")
    p.add_argument(
        "--full-refresh",
        action="store_true",
        help="reload everything and swap it in atomically (raw stays as it was if the reload fails)",
    )
    p.add_argument(
        "--recover",
        action="store_true",
        help="abort pending load packages (rewinds state), say what raw holds, and exit",
    )
    p.add_argument("--wait", type=float, default=None, help="wait up to SECONDS for the warehouse lock")
    p.add_argument(
        "--outcome-file",
        type=Path,
        help="write which services loaded and which failed (JSON) here at the end of the run "
        "(the flow's --allow-partial reads it)",
    )
    p.add_argument("--log-level", default=os.environ.get("EXTRACT_LOG_LEVEL", "INFO"))
    args = p.parse_args(argv)
    try:
        known = list(SERVICES)  # reads and validates the source files (sources/, SHOP_SOURCES_DIR)
    except SourceFileError as exc:
        p.error(str(exc))
    unknown = [n for n in args.names if n not in known]
    if unknown:
        p.error(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return args


def _stop_loads(signum: int) -> None:
    """On a stop signal: raise dlt's own stop flag, which its extract and load loops check between
    items (in every thread; its own handler only runs in the main thread), wake its sleeps, and stop
    the forked extract children."""
    dltcompat.stop_dlt_loops(signum)
    forked.stop_children(signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    signals.install()  # SIGTERM / SIGINT: the run ends as "interrupted", children stopped, exit 128+N
    signals.on_stop(_stop_loads)
    args = parse_args(argv)
    setup_logging(args.log_level)
    private.owner_only()  # the warehouse, its WAL and spill folder, dlt's state: owner-only
    skip_pandas_in_arrow()
    try:
        warehouse_check.tighten_private_paths()  # owner-only; a warehouse this user cannot read: one line
        if args.recover:  # recorded with its whole command line
            from extract import recovery  # dlt's load machinery: only for --recover

            command = shlex.join(["python", "-m", "extract", *(sys.argv[1:] if argv is None else argv)])
            return recovery.recover(args.names, args.wait, command)
        result = run(args.names, args.full_refresh, args.wait)
        if args.outcome_file is not None:
            write_outcome(args.outcome_file, result, args.names or list(SERVICES))
    except signals.Interrupted as exc:
        log.error("extract %s: what committed stays, the rest loads next run", exc)
        return exc.exit_code
    except WarehouseBusy as exc:
        log.error("%s", exc)
        return EXIT_BUSY
    except RuntimeError as exc:  # after WarehouseBusy, a RuntimeError too
        if (stop := signals.stop_behind(exc)) is None:  # DuckDB reports our stop as "Query interrupted"
            raise
        log.error("extract %s: what committed stays, the rest loads next run", stop)
        return stop.exit_code
    except (duckdb.Error, OSError) as exc:  # open in another process, read-only, out of space
        if (line := warehouse_check.explain(exc)) is not None:  # damaged or unreadable: what to do
            log.error("%s", line)
            return EXIT_FAILED
        log.error("warehouse %s: %s", settings.warehouse_path(), redact.mask(str(exc)))
        return EXIT_FAILED
    return EXIT_FAILED if result.failures else 0
