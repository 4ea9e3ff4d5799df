"""Extract and normalize some services in a forked child process; the parent loads what they produced.

Why: a full load is CPU-bound Python (page decoding, dlt's extract and normalize) and one process runs
Python on one core at a time, however many threads it has. With two service threads in one process the
events walk and the four small services competed for the GIL, and the run took twice the CPU time of
the walk on a 2-core machine. A child process has a GIL of its own. It is forked (not spawned) after
the imports, so it starts in milliseconds without importing dlt, pyarrow and duckdb again.

Division of work, kept so that exactly one process ever writes the warehouse:

* the parent, before forking: syncs each pipeline with the warehouse (or proves its local state is the
  current one) and finishes pending load packages, so the child starts from the committed state;
* the child: for each of its services, ``pipeline.extract`` and ``pipeline.normalize`` into the
  pipeline's working folder (``run/dlt``), never opening the warehouse; it writes a JSON result per
  service and leaves with ``os._exit`` (no atexit hooks, no destructors of the parent's DuckDB
  connection, which it inherited and must not touch);
* the parent, after the child exits: ``pipeline.load`` of the normalized packages on its own cursor.

A full refresh takes the same path with the refresh's pipeline (same name and dataset, a working folder
of its own, extract/refresh.py): the child extracts into that folder, and the parent loads it into the
refresh's database and swaps it into the warehouse in one transaction; the child never sees either.

Failures keep dlt's guarantees: a child killed during extract leaves nothing behind (dlt commits an
extracted package only at the end), a package normalized but not loaded stays pending and the next run
finishes it first, and incremental state only advances when the package loads in the parent.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from core import signals

log = logging.getLogger("extract.forked")

_live: set[int] = set()  # children not reaped yet, for ``stop_children``


def stop_children(signum: int = 15) -> None:
    """Send ``signum`` (SIGTERM) to every child still running: a stopping loader stops its children
    (they end at once, unloaded; their services' cursors do not move). For ``core.signals.on_stop``."""
    for pid in list(_live):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            _live.discard(pid)


@dataclass
class ServiceOutcome:
    """What the child reports for one service: rows normalized per table, request stats, or an error."""

    counts: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    steps: str = ""
    seconds: float = 0.0
    error: str | None = None
    endpoints: list[list[Any]] = field(default_factory=list)  # [endpoint, reported total, walked, loaded]


@dataclass
class Child:
    """A forked child extracting ``services``; it reports each service on a pipe as soon as it is done."""

    pid: int
    services: list[str]
    reports: Any  # the read end of the pipe, one JSON line per finished service

    def outcomes(self) -> Iterator[tuple[str, ServiceOutcome]]:
        """Each service's outcome as the child finishes it (blocking), then an error for any service the
        child did not report (it crashed or was killed); reaps the child."""
        seen: set[str] = set()
        with self.reports:
            for line in self.reports:
                try:
                    name, value = json.loads(line)
                    outcome = ServiceOutcome(**value)
                except (ValueError, TypeError):
                    continue  # a torn last line of a killed child: that service counts as unreported
                seen.add(name)
                yield name, outcome
        _, status = os.waitpid(self.pid, 0)
        _live.discard(self.pid)
        code = os.waitstatus_to_exitcode(status)
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        for name in self.services:
            if name not in seen:
                yield (
                    name,
                    ServiceOutcome(
                        error=f"the extract child process (pid {self.pid}) {how} before finishing {name};"
                        " nothing of it was loaded (incremental state not advanced)"
                    ),
                )


def start_child(services: list[Any], full_refresh: bool, cutoff: datetime) -> Child:
    """Fork a child that extracts and normalizes ``services`` (``extract.spec.Service``) one by one.

    Call from the main thread while no other thread of this process is running Python: a fork copies
    only the calling thread, so a lock held by another thread at that moment would stay held forever
    in the child.
    """
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        _live.clear()  # its siblings are not its to stop
        signals.die_with_parent()  # a loader killed with -9 takes its children with it
        os.close(read_fd)
        code = 70  # EX_SOFTWARE, if even the reporting below fails
        try:
            with os.fdopen(write_fd, "w", buffering=1) as reports:
                _child_main(services, full_refresh, cutoff, reports)
            code = 0
        except signals.Interrupted as exc:  # stopped with its parent: no traceback, nothing reported
            code = exc.exit_code
        except BaseException:  # the child must reach os._exit whatever happens
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    os.close(write_fd)
    _live.add(pid)
    log.debug("forked extract child %d for %s", pid, ", ".join(s.name for s in services))
    return Child(pid=pid, services=[s.name for s in services], reports=os.fdopen(read_fd, "r"))


def _child_main(services: list[Any], full_refresh: bool, cutoff: datetime, reports: TextIO) -> None:
    """Extract + normalize each service into its pipeline's working folder; report each when done."""
    # imported here: the runner imports this module, and these import the runner's helpers
    from extract.config import service_config
    from extract.failures import describe_failure
    from extract.pipelines import make_pipeline, step_times
    from extract.progress import RunProgress
    from extract.refresh import Refresh
    from extract.resources import build_source
    from extract.shape import DriftTracker

    progress = RunProgress()
    for service in services:
        started = time.monotonic()
        try:
            cfg = service_config(service.name, service.auth)
            # a path, not a connection: never opened here
            root = Refresh.of(service.name).pipelines_dir if full_refresh else None
            pipeline = make_pipeline(service.name, root=root)
            source, client = build_source(service, cfg, cutoff, progress, DriftTracker())
            pipeline.extract(source, loader_file_format="parquet")
            info = pipeline.normalize()
            counts = {t: n for t, n in (info.row_counts or {}).items() if not t.startswith("_dlt")}
            outcome: dict[str, Any] = {
                "counts": counts,
                "requests": client.requests_sent,
                "retries": client.retries,
                "steps": step_times(pipeline),
                "seconds": time.monotonic() - started,
            }
        except Exception as exc:  # one service's failure is reported and the others still extract
            outcome = {"error": describe_failure(service.name, exc)}
        outcome["endpoints"] = progress.counts(service.name)
        reports.write(json.dumps([service.name, outcome]) + "\n")
