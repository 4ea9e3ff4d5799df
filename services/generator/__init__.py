"""Deterministic shop data: ``generate(data_dir, scale, seed)`` fills the five service files.

Same seed and scale give byte-identical records (no wall clock in the data: the history is anchored to a
fixed end date recorded in ``meta``). Scale 1 is about 10k customers, 1k products, 50k orders, 55k
payments and 500k events; the scale is a float, so tests use small fractions.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from services.generator.history import History
from services.generator.progress import Progress
from services.generator.timeline import HISTORY_END_US, HISTORY_START_US
from services.generator.writer import BulkWriter
from services.store.db import db_path
from services.store.schema import SERVICES
from services.store.timefmt import fmt_us, now_us

__all__ = ["GENERATOR_VERSION", "Progress", "generate"]

GENERATOR_VERSION = "1"
log = logging.getLogger("services.generator")


def generate(
    data_dir: Path, scale: float, seed: int, *, overwrite: bool = False, progress: Progress | None = None
) -> dict[str, int]:
    """Generate a complete dataset into ``data_dir``; returns row counts per table.

    Refuses to touch existing service files unless ``overwrite``: the launcher only calls this for an
    empty data dir, and silently replacing someone's data would be worse than an error. ``progress``
    (default: stderr, a bar only on a terminal) gets a line per stage and per tenth of it.
    """
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    data_dir = Path(data_dir)
    existing = [str(db_path(data_dir, s)) for s in SERVICES if db_path(data_dir, s).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"service data already present: {', '.join(existing)}")
    started = time.monotonic()
    progress = progress if progress is not None else Progress()
    writer = BulkWriter(data_dir)
    try:
        history = History(seed, scale, writer, progress)
        history.run()
        common: dict[str, object] = {
            "seed": seed,
            "scale": scale,
            "generator_version": GENERATOR_VERSION,
            "history_start": fmt_us(HISTORY_START_US),
            "history_end": fmt_us(HISTORY_END_US),
            "generated_at": fmt_us(now_us()),  # wall clock, in meta only: never in the records
        }
        stage = progress.stage("indexing and moving into place", len(SERVICES), "files")
        meta = {"*": common, "customers": {"max_address_id": history.max_address_id}}
        counts = writer.finish(meta, on_file=stage.update)
        stage.finish(f"{len(SERVICES)} service files in {data_dir}")
    except BaseException:
        writer.abort()
        raise
    elapsed = time.monotonic() - started
    log.info(
        "generated scale %s seed %s into %s in %.1f s: %s",
        scale,
        seed,
        data_dir,
        elapsed,
        ", ".join(f"{k}={v}" for k, v in sorted(counts.items())),
    )
    return counts
