"""The stream's knobs in one frozen object, so the loop, the CLI and the tests agree on defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from core import settings

DEFAULT_BATCH_MAX_EVENTS = 1000
DEFAULT_BATCH_MAX_SECONDS = 1.0
DEFAULT_BATCH_CAP = 50_000
DEFAULT_LOCK_WAIT = 900.0
# The longest single long-poll (the service allows 30 s): the feed thread notices a stop or a rewind
# within this many seconds while the feed is idle, at the cost of one empty answer per window.
MAX_POLL_SECONDS = 2.0
# Records per request (the service's maximum): a backlog drains in few round trips.
PAGE_LIMIT = 5000


def realtime_exports_dir() -> Path:
    """The stream's own publishing root, ``<exports>/realtime`` (``SHOP_STREAM_EXPORTS_DIR`` overrides).

    A separate root keeps the stream's every-second versions from pruning or racing the batch flow's
    versions under ``exports/versions``: each root has its own ``current`` and keeps its own history.
    """
    raw = os.environ.get("SHOP_STREAM_EXPORTS_DIR")
    if raw:
        path = Path(raw).expanduser()
        return path if path.is_absolute() else settings.repo_root() / path
    return settings.exports_dir() / "realtime"


def stream_dir() -> Path:
    """Working folder of the stream under the run folder: dbt target/logs and the stats file."""
    return settings.run_dir() / "stream"


@dataclass(frozen=True)
class StreamSettings:
    """How batches close, how long to wait for the lock, and where output goes."""

    batch_max_events: int = DEFAULT_BATCH_MAX_EVENTS
    batch_max_seconds: float = DEFAULT_BATCH_MAX_SECONDS
    batch_cap: int = DEFAULT_BATCH_CAP
    from_event_id: int | None = None
    once: bool = False
    lock_wait: float = DEFAULT_LOCK_WAIT
    marts: bool = True
    dbt_command: str = "run"
    marts_sql: str = "direct"  # run dbt's compiled SQL per batch, or "dbt": a dbt invocation per batch
    raw_writer: str = "direct"  # rawdirect.py's one transaction per batch, or "dlt": pipeline.run
    stats_file: Path | None = None
    exports: Path | None = None

    def __post_init__(self) -> None:
        if self.batch_max_events < 1:
            raise ValueError("--batch-max-events must be at least 1")
        if self.batch_max_seconds <= 0:
            raise ValueError("--batch-max-seconds must be positive")
        if self.batch_cap < self.batch_max_events:
            raise ValueError("--batch-cap must be at least --batch-max-events")
        if self.dbt_command not in ("build", "run"):
            raise ValueError("--dbt-command must be 'build' or 'run'")
        if self.marts_sql not in ("direct", "dbt"):
            raise ValueError("--marts-sql must be 'direct' or 'dbt'")
        if self.raw_writer not in ("direct", "dlt"):
            raise ValueError("--raw-writer must be 'direct' or 'dlt'")

    @property
    def stats_path(self) -> Path:
        return self.stats_file or settings.run_dir() / "stream-stats.json"

    @property
    def exports_root(self) -> Path:
        return self.exports or realtime_exports_dir()
