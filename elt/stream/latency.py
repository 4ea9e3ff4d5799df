"""End-to-end latency bookkeeping: event ``occurred_at`` → visible in the published real-time mart.

Every event of a published batch contributes one sample (publish time minus its occurred_at), so
p50/p95 describe what a dashboard reader experiences per event, not per batch. Samples beyond
``MAX_SAMPLES`` are reservoir-sampled, so a stream running for days keeps bounded memory while its
percentiles stay unbiased; the maximum is tracked exactly.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from core.atomic_files import write_atomic

MAX_SAMPLES = 200_000


def latencies_seconds(occurred_at: pa.ChunkedArray | pa.Array, visible_at_wall: float) -> list[float]:
    """Seconds from each ``occurred_at`` (Arrow timestamp, UTC) to ``visible_at_wall`` (epoch seconds)."""
    micros = pc.cast(occurred_at, pa.timestamp("us", tz="UTC")).cast(pa.int64())
    now_us = int(visible_at_wall * 1_000_000)
    return [(now_us - v) / 1e6 for v in micros.to_pylist() if v is not None]


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list (``q`` in 0..100)."""
    if not sorted_values:
        return None
    rank = max(1, min(len(sorted_values), int(-(-q * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


@dataclass
class LatencyStats:
    """Per-event samples plus per-batch counters for the run summary and the benchmark's JSON."""

    samples: list[float] = field(default_factory=list)
    seen: int = 0
    max_latency: float | None = None
    batches: int = 0
    failed_batches: int = 0
    events: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def add(self, values: list[float]) -> None:
        for v in values:
            self.seen += 1
            if self.max_latency is None or v > self.max_latency:
                self.max_latency = v
            if len(self.samples) < MAX_SAMPLES:
                self.samples.append(v)
            else:
                j = self.rng.randrange(self.seen)
                if j < MAX_SAMPLES:
                    self.samples[j] = v

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.samples)
        return {
            "events": self.events,
            "batches": self.batches,
            "failed_batches": self.failed_batches,
            "latency_samples": self.seen,
            "latency_p50_s": _round(percentile(ordered, 50)),
            "latency_p95_s": _round(percentile(ordered, 95)),
            "latency_max_s": _round(self.max_latency),
        }

    def write(self, path: Path, extra: dict[str, Any] | None = None) -> None:
        """Write the summary atomically (a reader never sees half a file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps({**self.summary(), **(extra or {})}, indent=2) + "\n")


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)
