"""Loading one service: dlt's extract, normalize and load, then the hard deletes (extract/deletes.py),
or for ``--full-refresh`` a first load built aside and swapped in (extract/refresh.py); and loading what
a forked child extracted (extract/forked.py). Each records its rows or its failure in the run's result.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import dlt
import duckdb

from core import signals
from extract import forked
from extract.deletes import apply_deletes
from extract.errors import ExtractError
from extract.failures import failure_cause, record_failure
from extract.pipelines import (
    add_counts,
    duckdb_config,
    make_pipeline,
    pipelines_dir,
    prepare_pipeline,
    step_times,
)
from extract.progress import RunProgress
from extract.refresh import Refresh
from extract.resources import build_source
from extract.result import RunResult
from extract.shape import DriftTracker
from extract.spec import Service

log = logging.getLogger("extract")


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
            add_counts(counts, pipeline)
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
            add_counts(counts, pipeline)
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
        record_failure(service.name, exc, result)
    finally:
        for endpoint, expected, walked, loaded in progress.counts(service.name):
            result.endpoints[(service.name, endpoint)] = (expected, walked, loaded)


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
            record_failure(name, exc, result)
