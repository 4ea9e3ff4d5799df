"""``python -m extract``: load the services into ``raw_<service>`` under the warehouse lock.

One dlt pipeline per service (dataset ``raw_<service>``, working folder under ``run/dlt`` so it is
covered by the warehouse lock). A service that fails does not stop the others, but the run exits
non-zero, records the failure in ``ops.runs`` and leaves that service's incremental state where it
was. Erased keys (a deletions feed) and records that mark themselves deleted (``soft_delete``) are
removed after each load (extract/deletes.py). ``--full-refresh`` builds a first load aside and swaps it
in atomically (extract/refresh.py); ``--recover`` says what it aborted, what raw holds and where the
next run starts.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from core import settings

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
if (settings.repo_root() / ".dlt").is_dir():
    os.environ.setdefault("DLT_PROJECT_DIR", str(settings.repo_root()))

import dlt
import duckdb
import pyarrow as pa

from core import file_modes as private
from core import ops_fallback, ops_log, signals, warehouse_check
from core.lock import WarehouseBusy, warehouse_lock
from extract import docdrift, forked, hints, horizon, redact, resume, tracebacks
from extract.config import ServiceConfig, service_config
from extract.deletes import apply_deletes
from extract.destination import warehouse_destination
from extract.errors import ExtractError, SourceFileError
from extract.progress import RunProgress, summary_lines
from extract.refresh import Refresh, describe_rows, package_rows
from extract.resources import build_source
from extract.shape import DriftTracker
from extract.sources import SERVICES
from extract.spec import Service
from extract.statesync import align_with_warehouse

log = logging.getLogger("extract")
EXIT_FAILED = 1
EXIT_BUSY = 3
DUCKDB_MEMORY_LIMIT = "384MB"  # default of [sources.extract] duckdb_memory_limit ("none": DuckDB's own)


@dataclass
class RunResult:
    """What one invocation did, for the summary, the ops log and tests."""

    table_rows: dict[tuple[str, str], int] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    hard_deleted: int = 0
    # per endpoint walked: (reported total or None, rows walked, rows handed to the load)
    endpoints: dict[tuple[str, str], tuple[int | None, int, int]] = field(default_factory=dict)
    seconds: float = 0.0
    cutoff: datetime | None = None  # one for every service of the run (extract/incremental.py)

    @property
    def rows(self) -> int:
        return sum(self.table_rows.values())


def pipelines_dir() -> str:
    """dlt's working folder: under the run folder, next to the fleet and the lock's other users."""
    return str(settings.dlt_dir())


def make_pipeline(
    name: str, connection: duckdb.DuckDBPyConnection | None = None, root: str | None = None
) -> dlt.Pipeline:
    """The pipeline of one service, writing dataset ``raw_<name>`` of the warehouse.

    ``root`` (dlt's ``pipelines_dir``; default: the loaders' dlt folder) only differs for a full refresh,
    whose pipeline has the same name and dataset but a working folder and database of its own
    (extract/refresh.py).

    With ``connection`` (an open connection to the warehouse) dlt borrows cursors from it instead of
    opening the file itself. Why: dlt's pool closes the database whenever its last borrowed cursor
    returns, i.e. several times per load step (schema update, each copy job, merge, completion); every
    close checkpoints the WAL into the file and every re-open reads the catalog again. Holding one
    connection for the whole run made that a single checkpoint (py-spy; bench/tuning-history.md).
    """
    hints.install()  # cheaper config resolution for every dlt step (see extract/hints.py)
    target = connection if connection is not None else str(settings.warehouse_path())
    return dlt.pipeline(
        pipeline_name=f"extract_{name}",
        destination=warehouse_destination(target),
        dataset_name=f"raw_{name}",
        pipelines_dir=root or pipelines_dir(),
    )


def _root_cause(exc: BaseException) -> BaseException:
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "exception", None) or exc.__cause__
        if inner is None or inner is exc:
            break
        exc = inner
    return exc


# a value DuckDB quotes when it refuses it (`value "..." is not valid UTF8!`): field values stay out of
# every message and log
_QUOTED_VALUE = re.compile(r'value ".*"(?= is not valid UTF8)|value "(?:[^"\\]|\\.)*"', re.DOTALL)


def failure_cause(exc: BaseException) -> str:
    """The root cause of ``exc`` in one line, without the field value a destination error may quote."""
    cause = _root_cause(exc)
    text = str(cause) if isinstance(cause, ExtractError) else f"{type(cause).__name__}: {cause}"
    return _QUOTED_VALUE.sub("a value", text)


class QuotedValueFilter(logging.Filter):
    """Takes the field value a destination error quotes out of dlt's own log lines too (dlt logs a
    failed load job's message, value included, before the runner sees the error)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging to report
            return True
        scrubbed = _QUOTED_VALUE.sub("a value", message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


def describe_failure(service: str, exc: BaseException) -> str:
    """A one-paragraph error: what failed and how to recover, with secrets masked."""
    cause = _root_cause(exc)
    step = getattr(exc, "step", None)
    text = failure_cause(exc)
    if step in ("normalize", "load") and not isinstance(cause, ExtractError):
        text += (
            f" -- the {step} step failed and its load package stays pending; the next run retries it first."
            f" If it keeps failing, run `python -m extract --recover {service}` to abort it"
            " (incremental state rewinds; the next run re-extracts)."
        )
    else:
        text += " (incremental state not advanced)"
    return redact.mask(text)


def cursor_positions(pipeline: dlt.Pipeline) -> str:
    """Where each resource's incremental cursor stands before a run (``orders=2026-11-28T…``,
    ``events=536940``), for the run log's record of what the run read."""
    positions = []
    for source_state in (pipeline.state.get("sources") or {}).values():
        for resource, state in sorted((source_state.get("resources") or {}).items()):
            value = state.get("last_value", state.get("last_id"))
            if value is not None:
                positions.append(f"{resource}={value}")
    return ", ".join(positions)


def _add_counts(counts: dict[str, int], pipeline: dlt.Pipeline) -> None:
    """Add the rows per table that the pipeline's last run normalized (dlt's own tables excluded)."""
    trace = pipeline.last_trace
    info = trace.last_normalize_info if trace else None
    for table, rows in (info.row_counts if info else {}).items():
        if not table.startswith("_dlt"):
            counts[table] = counts.get(table, 0) + rows


def step_times(pipeline: dlt.Pipeline) -> str:
    """``extract 1.20s, normalize 0.10s, load 0.30s`` from the pipeline's last trace."""
    trace = pipeline.last_trace
    return ", ".join(
        f"{st.step} {(st.finished_at - st.started_at).total_seconds():.2f}s"
        for st in (trace.steps if trace else [])
        if st.finished_at and st.step != "run"
    )


def prepare_pipeline(
    service: Service,
    result: RunResult,
    counts: dict[str, int],
    connection: duckdb.DuckDBPyConnection | None = None,
    sync: bool = False,
) -> tuple[dlt.Pipeline, ServiceConfig]:
    """The service's pipeline, in step with the warehouse and with no pending package left, and its
    resolved configuration (base URL, credentials, knobs).

    With ``sync`` the destination sync that ``pipeline.run`` would do is done here, for a pipeline whose
    extract runs elsewhere (a forked child, extract/forked.py) and which is only loaded in this process.
    Rows of a finished pending package are added to ``counts``; what the run read goes to ``result.inputs``.
    """
    cfg = service_config(service.name, service.auth)
    pipeline = make_pipeline(service.name, connection)
    if connection is not None:
        pipeline = align_with_warehouse(pipeline, connection)
    if sync and not pipeline._state_restored:
        pipeline.sync_destination()
        pipeline._state_restored = True  # what run() sets after its own sync
    discard_unfinished_refresh(service)
    # a package a killed run left (by this loader or by the stream) loads exactly once, and the cursor
    # is the warehouse's (dlt alone resumes at least once: extract/resume.py)
    if resume.finish_pending(pipeline):
        _add_counts(counts, pipeline)
    positions = cursor_positions(pipeline) or "none (first load)"
    result.inputs[service.name] = f"{cfg.base_url}; cursors: {positions}"
    docdrift.check_before_load(service, cfg)  # its OpenAPI document, before any data request
    return pipeline, cfg


def discard_unfinished_refresh(service: Service) -> str | None:
    """Remove what a full refresh that never committed left (killed, or failed before its clean-up);
    it never touched ``raw_<service>``, so the run goes on from the pipeline's own state."""
    left = Refresh.of(service.name).discard()
    if left:
        log.warning(
            "%s: discarded what an unfinished full refresh left (%s); raw_%s was never touched by it",
            service.name,
            left,
            service.name,
        )
    return left


class RefreshFailed(ExtractError):
    """A full refresh that did not commit: the service's raw tables and state are as they were."""


def full_refresh_service(
    service: Service,
    connection: duckdb.DuckDBPyConnection,
    counts: dict[str, int],
    load: Callable[[dlt.Pipeline], None],
) -> tuple[dlt.Pipeline, int]:
    """Build a first load of ``service`` aside and swap it into ``raw_<service>`` (extract/refresh.py).

    ``load(pipeline)`` runs dlt's steps on the refresh's pipeline: all of them (in-process), or only the
    load of what a forked child extracted into the refresh's working folder. Returns that pipeline and
    the erased rows removed. On any failure before the swap commits, what the refresh built is
    discarded and ``RefreshFailed`` says that raw is unchanged and what to do.
    """
    target = Refresh.of(service.name)
    dataset = f"raw_{service.name}"
    refresh_con = target.connect(duckdb_config())
    try:
        try:
            pipeline = make_pipeline(service.name, refresh_con, root=target.pipelines_dir)
            load(pipeline)
            _add_counts(counts, pipeline)
            erased = apply_deletes(pipeline, service)
        finally:
            refresh_con.close()  # the swap attaches the file: no other handle may be open on it
        swap_started = time.monotonic()
        target.swap(connection, dataset)
        log.info(
            "%s: full refresh swapped into %s in %.2fs",
            service.name,
            dataset,
            time.monotonic() - swap_started,
        )
    except Exception as exc:
        built = target.discard() or "nothing"
        raise RefreshFailed(
            f"full refresh not applied: {failure_cause(exc)}. {dataset} is unchanged: its rows and"
            f" cursors are those of its last committed load (discarded what the refresh built: {built})."
            f" Fix the cause and re-run `python -m extract --full-refresh {service.name}`;"
            " a plain run continues from the previous cursors."
        ) from None
    target.adopt(Path(pipelines_dir()) / f"extract_{service.name}")
    return pipeline, erased


def _log_loaded(
    service: Service, rows: int, seconds: float, steps: str, requests: int, retries: int, full_refresh: bool
) -> None:
    log.info(
        "%s: loaded %d rows into raw_%s in %.2fs (%s; %d requests, %d retries)%s",
        service.name,
        rows,
        service.name,
        seconds,
        steps,
        requests,
        retries,
        " [full refresh]" if full_refresh else "",
    )


def run_service(
    service: Service,
    full_refresh: bool,
    progress: RunProgress,
    result: RunResult,
    cutoff: datetime,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> None:
    """Extract, normalize and load one service; record its row counts or its failure."""
    started = time.monotonic()
    try:
        counts: dict[str, int] = {}
        pipeline, cfg = prepare_pipeline(service, result, counts, connection)
        source, client = build_source(service, cfg, cutoff, progress, DriftTracker())
        if full_refresh:
            if connection is None:
                raise ValueError("a full refresh swaps its tables in on the run's warehouse connection")
            pipeline, erased = full_refresh_service(
                service, connection, counts, lambda p: p.run(source, loader_file_format="parquet")
            )
        else:
            pipeline.run(source, loader_file_format="parquet")
            _add_counts(counts, pipeline)
            erased = apply_deletes(pipeline, service)
        for table, rows in counts.items():
            result.table_rows[(service.name, table)] = rows
        result.hard_deleted += erased
        _log_loaded(
            service,
            sum(counts.values()),
            time.monotonic() - started,
            step_times(pipeline),
            client.requests_sent,
            client.retries,
            full_refresh,
        )
    except Exception as exc:  # one service's failure is recorded and the others still load
        _record_failure(service.name, exc, result)
    finally:
        for endpoint, expected, walked, loaded in progress.counts(service.name):
            result.endpoints[(service.name, endpoint)] = (expected, walked, loaded)


def _record_failure(name: str, exc: Exception, result: RunResult) -> None:
    """Log and keep one service's failure. One that a stop signal caused (dlt wraps the Ctrl-C it took
    during a load, or ours, in its own error) starts our stop too, so the run ends as interrupted."""
    cause = _root_cause(exc)
    if isinstance(cause, KeyboardInterrupt):
        signum = getattr(cause, "signum", None) or getattr(cause, "signal_code", None) or signal.SIGINT
        signals.begin_stop(int(signum))
        result.failures[name] = f"stopped by {signal.Signals(int(signum)).name} before it committed"
        log.warning("%s: %s", name, result.failures[name])
        return
    message = describe_failure(name, exc)
    result.failures[name] = message
    log.error("%s: FAILED: %s", name, message)


def load_child(
    child: forked.Child,
    services: list[Service],
    full_refresh: bool,
    result: RunResult,
    counts: dict[str, dict[str, int]],
    cursors: dict[str, duckdb.DuckDBPyConnection],
) -> None:
    """Load what a forked child normalized, each service as soon as the child reports it done."""
    by_name = {s.name: s for s in services}
    for name, outcome in child.outcomes():
        service = by_name[name]
        for endpoint, expected, walked, loaded in outcome.endpoints:
            result.endpoints[(name, endpoint)] = (expected, walked, loaded)
        if outcome.error is not None:
            if signals.stop_requested():  # stopped with us: not a fault of its own
                outcome.error = f"stopped by {signal.Signals(signals.received()).name} before it loaded"
            result.failures[name] = outcome.error
            log.error("%s: FAILED: %s", name, outcome.error)
            continue
        started = time.monotonic()
        try:
            rows = counts[name]
            if full_refresh:  # the child extracted into the refresh's working folder
                pipeline, erased = full_refresh_service(service, cursors[name], {}, lambda p: p.load())
            else:
                pipeline = make_pipeline(name, cursors[name])
                pipeline.load()
                erased = apply_deletes(pipeline, service)
            for table, n in outcome.counts.items():
                rows[table] = rows.get(table, 0) + n
            for table, n in rows.items():
                result.table_rows[(name, table)] = n
            result.hard_deleted += erased
            _log_loaded(
                service,
                sum(rows.values()),
                outcome.seconds + time.monotonic() - started,
                f"{outcome.steps} in a child process, {step_times(pipeline)}",
                outcome.requests,
                outcome.retries,
                full_refresh,
            )
        except Exception as exc:
            _record_failure(name, exc, result)


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


def endpoint_rows(result: RunResult) -> list[tuple[str, str, int | None, int, int, str]]:
    """``ops.run_endpoints`` rows: per endpoint walked, the total the API reported, the rows walked and
    the rows loaded (0 for a service that failed: nothing of it committed), and how it ended."""
    rows = []
    for (source, endpoint), (expected, walked, loaded) in sorted(result.endpoints.items()):
        failed = source in result.failures
        rows.append(
            (source, endpoint, expected, walked, 0 if failed else loaded, "failed" if failed else "loaded")
        )
    return rows


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


def start_order(services: list[Service], first: list[str]) -> list[Service]:
    """``services`` with the ones named in ``first`` moved to the front, in that order.

    Why: with ``parallel_services`` threads the run lasts at least as long as its longest service, so
    that one must start at once (longest-first scheduling). At scale 1 events is 82 % of the rows: with
    two threads its page walk, which mostly waits on the events service, overlaps the four other
    services' whole extract and load.
    """
    rank = {name: i for i, name in enumerate(first)}
    return sorted(services, key=lambda s: rank.get(s.name, len(rank)))


def _run_services(
    services: list[Service], full_refresh: bool, result: RunResult, connection: duckdb.DuckDBPyConnection
) -> None:
    """Run every service's pipeline, one after another or ``parallel_services`` at a time."""
    cutoff = result.cutoff = datetime.now(UTC)
    progress = RunProgress()
    workers = max(1, min(len(services), int(dlt.config.get("sources.extract.parallel_services") or 1)))
    if workers > 1:
        services = start_order(services, dlt.config.get("sources.extract.start_first", list) or [])
        # pyarrow imports pandas lazily on its first conversion from Python objects; two service threads
        # doing that at once made one of them see a half-imported pandas ("partially initialized module",
        # seen in-process in the test suite). Trigger it here, in one thread (a no-op after the CLI's
        # skip_pandas_in_arrow).
        pa.array([0])
    # a DuckDB connection refuses a second concurrent call, so each service gets its own cursor on the
    # run's database instance (made here, in one thread)
    cursors = {s.name: connection.cursor() for s in services}
    try:
        if workers == 1:
            for service in services:
                signals.raise_if_stopping()
                run_service(service, full_refresh, progress, result, cutoff, cursors[service.name])
            return
        if use_processes():
            _run_forked(services, workers, full_refresh, progress, result, cutoff, cursors)
            return
        # dlt pipelines are thread-affine: one thread per service lets one service load into DuckDB while
        # another is still walking its pages (different schemas, one process, one lock)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="extract") as pool:
            futures = [
                pool.submit(run_service, s, full_refresh, progress, result, cutoff, cursors[s.name])
                for s in services
            ]
            for future in futures:
                future.result()
    finally:
        for cursor in cursors.values():
            cursor.close()


def use_processes() -> bool:
    """Whether parallel services extract in forked children (``[sources.extract] processes``, default
    true). Only from a single-threaded process with ``os.fork``: a fork copies just the calling thread,
    so a lock another thread held at that moment (a log handler, a buffered stream) would stay held in
    the child for ever. A host that runs threads of its own (a pytest-xdist worker, an application
    calling ``run()``) gets the threaded path instead."""
    value = dlt.config.get("sources.extract.processes")
    enabled = True if value is None else str(value).strip().lower() not in ("0", "false", "no", "off")
    if enabled and (not hasattr(os, "fork") or threading.active_count() > 1):
        log.debug("services run in threads: this process has other threads, forking is unsafe")
        return False
    return enabled


def _run_forked(
    services: list[Service],
    workers: int,
    full_refresh: bool,
    progress: RunProgress,
    result: RunResult,
    cutoff: datetime,
    cursors: dict[str, duckdb.DuckDBPyConnection],
) -> None:
    """The first service runs here; the others extract in ``workers - 1`` forked children and load here.

    Why this split: the first service (events, by ``start_first``) is the longest; its walk and the other
    services' extract then run Python on different cores. Every load stays in this process, the only
    one holding the warehouse open (see extract/forked.py).
    """
    local, remote = services[0], services[1:]
    counts: dict[str, dict[str, int]] = {s.name: {} for s in remote}
    ready: list[Service] = []
    for service in remote:  # in the main thread, before any other thread exists: see start_child
        try:
            prepare_pipeline(service, result, counts[service.name], cursors[service.name], sync=True)
            ready.append(service)
        except Exception as exc:
            message = describe_failure(service.name, exc)
            result.failures[service.name] = message
            log.error("%s: FAILED: %s", service.name, message)
    groups = [ready[i :: workers - 1] for i in range(workers - 1)]
    children = [(forked.start_child(group, full_refresh, cutoff), group) for group in groups if group]
    with ThreadPoolExecutor(max_workers=1 + len(children), thread_name_prefix="extract") as pool:
        futures = [
            pool.submit(run_service, local, full_refresh, progress, result, cutoff, cursors[local.name])
        ]
        futures += [
            pool.submit(load_child, child, group, full_refresh, result, counts, cursors)
            for child, group in children
        ]
        for future in futures:
            future.result()


def connect_warehouse() -> duckdb.DuckDBPyConnection:
    """The run's connection to the warehouse, with DuckDB's memory capped (``duckdb_memory_limit``).

    Why the cap: DuckDB keeps the blocks it writes in its buffer pool up to its default limit (80 % of
    RAM), so without one the loader's peak memory grew with the data, all of the growth in the load and
    final checkpoint (the page walk itself stayed flat; bench/tuning-history.md, round 2).
    With a cap DuckDB evicts written blocks (and spills, if a merge ever needs more).
    """
    return duckdb.connect(str(settings.warehouse_path()), config=duckdb_config())


def duckdb_config() -> dict[str, str]:
    """The DuckDB settings of the loader's connections (the warehouse's and a full refresh's)."""
    limit = str(dlt.config.get("sources.extract.duckdb_memory_limit") or DUCKDB_MEMORY_LIMIT)
    return {} if limit.lower() in ("", "0", "none") else {"memory_limit": limit}


def run(names: list[str], full_refresh: bool = False, wait: float | None = None) -> RunResult:
    """Load ``names`` (all when empty) under the warehouse lock, logging the run to ``ops``."""
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
            ops_fallback.save(con, run_log)  # `running`, after any rows earlier runs could not write
            try:
                _run_services(services, full_refresh, result, con)
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


class _NoPandas:
    """A meta-path finder that makes ``import pandas`` fail; installed only for one probe below."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is not needed by the Arrow conversions of the loader")


def skip_pandas_in_arrow() -> None:
    """Tell pyarrow that pandas is absent, without hiding pandas from anyone who imports it.

    Why: pyarrow imports pandas lazily on its first conversion from Python objects (``pa.array([...])``,
    a scalar in ``pc.less(col, 5)``, dlt's ``_dlt_load_id`` column), to check whether the input is a
    pandas object. The loader never hands pandas objects to Arrow, yet that import cost seconds of CPU
    per run (py-spy; bench/tuning-history.md; pandas comes with the dev dependencies). pyarrow's
    shim remembers a failed import for its *implicit* checks only: ``to_pandas()``/``from_pandas()``
    and a plain ``import pandas`` still work afterwards.
    """
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(blocker)


def write_outcome(path: Path, result: RunResult, names: list[str]) -> None:
    """``{"loaded": [...], "failed": {name: message}}`` for the flow (messages as logged: no secrets),
    written whole or not at all."""
    failed = {name: result.failures[name] for name in names if name in result.failures}
    text = json.dumps({"loaded": [n for n in names if n not in failed], "failed": failed}, indent=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, path)


def _stop_loads(signum: int) -> None:
    """On a stop signal: raise dlt's own stop flag, which its extract and load loops check between
    items (in every thread; its own handler only runs in the main thread), wake its sleeps, and stop
    the forked extract children."""
    from dlt.common.runtime import signals as dlt_signals

    dlt_signals.set_received_signal(signum)
    dlt_signals.wake_all()
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
            command = shlex.join(["python", "-m", "extract", *(sys.argv[1:] if argv is None else argv)])
            return recover(args.names, args.wait, command)
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
