"""Live progress while pages arrive, and the closing summary of a run.

One log line every ``every_pages`` pages per resource (pages, rows, rows/s so far), a line when a
resource finishes, and at the end a table of rows per raw table with duration and rows/s - the
numbers an operator needs to see a stuck or slow source without attaching a debugger.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger("extract.progress")


@dataclass
class ResourceProgress:
    """Counters of one resource walk."""

    service: str
    resource: str
    every_pages: int = 20
    pages: int = 0
    rows_seen: int = 0
    rows_loaded: int = 0
    bytes: int = 0
    expected: int | None = None  # the total the API reported for the walk, if it reports one
    started: float = field(default_factory=time.monotonic)

    def reported(self, total: int) -> None:
        """The API's total for this walk (``extract.paginators.walk``'s ``on_total``)."""
        self.expected = total

    def counts(self) -> tuple[str, int | None, int, int]:
        """(endpoint, reported total, rows walked, rows handed to the load) for the run log."""
        return self.resource, self.expected, self.rows_seen, self.rows_loaded

    def page(self, rows_seen: int, rows_loaded: int, size: int) -> None:
        self.pages += 1
        self.rows_seen += rows_seen
        self.rows_loaded += rows_loaded
        self.bytes += size
        if self.pages % self.every_pages == 0:
            log.info(
                "%s/%s: %d pages, %d rows read, %d new, %.0f rows/s",
                self.service,
                self.resource,
                self.pages,
                self.rows_seen,
                self.rows_loaded,
                self.rows_seen / self.elapsed(),
            )

    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-6)

    def done(self, note: str = "") -> None:
        log.info(
            "%s/%s: done: %d pages, %d rows read, %d new, %.1f MB in %.2fs (%.0f rows/s)%s",
            self.service,
            self.resource,
            self.pages,
            self.rows_seen,
            self.rows_loaded,
            self.bytes / 1e6,
            self.elapsed(),
            self.rows_seen / self.elapsed(),
            note,
        )

    def unchanged(self) -> None:
        """The closing line of a snapshot identical to the one last loaded: its rows were read (to
        compare) but none is new and nothing is loaded, so the line must not count them as new."""
        self.rows_loaded = 0
        log.info(
            "%s/%s: done: %d pages, %d rows read, unchanged since the last load, nothing loaded "
            "(%.1f MB in %.2fs)",
            self.service,
            self.resource,
            self.pages,
            self.rows_seen,
            self.bytes / 1e6,
            self.elapsed(),
        )


class RunProgress:
    """All resources of a run, for the summary."""

    def __init__(self, every_pages: int = 20) -> None:
        self.every_pages = every_pages
        self.resources: list[ResourceProgress] = []
        self._lock = threading.Lock()

    def start(self, service: str, resource: str) -> ResourceProgress:
        p = ResourceProgress(service, resource, every_pages=self.every_pages)
        with self._lock:
            self.resources.append(p)
        return p

    def counts(self, service: str) -> list[tuple[str, int | None, int, int]]:
        """Each walked endpoint of ``service``: (endpoint, reported total, walked, loaded)."""
        with self._lock:
            return [p.counts() for p in self.resources if p.service == service]


def summary_lines(
    table_rows: dict[tuple[str, str], int], seconds: float, failures: dict[str, str]
) -> list[str]:
    """The closing summary: rows per raw table, total, duration, rows/s, failed services."""
    lines = [f"{'table':<40} {'rows':>12}"]
    total = 0
    for (service, table), rows in sorted(table_rows.items()):
        lines.append(f"{'raw_' + service + '.' + table:<40} {rows:>12,}")
        total += rows
    rate = total / seconds if seconds > 0 else 0.0
    lines.append(f"{'total':<40} {total:>12,}   in {seconds:.2f}s ({rate:,.0f} rows/s)")
    for service, error in failures.items():
        lines.append(f"FAILED {service}: {error}")
    return lines
