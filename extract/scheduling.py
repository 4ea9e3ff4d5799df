"""Scheduling a run's services: one after another, ``parallel_services`` threads, or the first service
here and the others extracted in forked children (``[sources.extract] processes``, extract/forked.py).
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import dlt
import duckdb
import pyarrow as pa

from core import signals
from extract import forked
from extract.failures import describe_failure
from extract.loading import load_child, run_service
from extract.pipelines import prepare_pipeline
from extract.progress import RunProgress
from extract.result import RunResult
from extract.spec import Service

log = logging.getLogger("extract")


def start_order(services: list[Service], first: list[str]) -> list[Service]:
    """``services`` with the ones named in ``first`` moved to the front, in that order.

    Why: with ``parallel_services`` threads the run lasts at least as long as its longest service, so
    that one must start at once (longest-first scheduling). At scale 1 events is 82 % of the rows: with
    two threads its page walk, which mostly waits on the events service, overlaps the four other
    services' whole extract and load.
    """
    rank = {name: i for i, name in enumerate(first)}
    return sorted(services, key=lambda s: rank.get(s.name, len(rank)))


def run_services(
    services: list[Service], full_refresh: bool, result: RunResult, connection: duckdb.DuckDBPyConnection
) -> None:
    """Run every service's pipeline, one after another or ``parallel_services`` at a time."""
    cutoff = result.cutoff = result.cutoff or datetime.now(UTC)  # the runner's, taken before its probes
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
