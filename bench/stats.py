"""Aggregate repeated runs into the numbers the report shows: median and min, valid runs only."""

from __future__ import annotations

import statistics
from typing import Any

from bench.measure import Measurement


def summarise(runs: list[Measurement]) -> dict[str, Any]:
    """Median/min wall and CPU, peak memory, rows/s over the runs that passed their check."""
    valid = [m for m in runs if m.ok]
    out: dict[str, Any] = {
        "runs": len(runs),
        "valid": len(valid),
        "invalid": [f"r{m.repeat}: {m.check}" for m in runs if not m.ok],
        "noisy": sum(m.noisy for m in runs),
    }
    if not valid:
        return out
    walls = [m.wall_s for m in valid]
    med_wall = statistics.median(walls)
    rows = int(statistics.median(m.rows for m in valid))
    out.update(
        {
            "wall_median_s": round(med_wall, 3),
            "wall_min_s": round(min(walls), 3),
            "cpu_median_s": round(statistics.median(m.cpu_s for m in valid), 3),
            "cpu_min_s": round(min(m.cpu_s for m in valid), 3),
            "services_cpu_median_s": round(statistics.median(m.services_cpu_s for m in valid), 2),
            "maxrss_median_mb": round(statistics.median(m.maxrss_mb for m in valid), 1),
            "maxrss_max_mb": round(max(m.maxrss_mb for m in valid), 1),
            "tree_rss_peak_median_mb": round(statistics.median(m.tree_rss_peak_mb for m in valid), 1),
            "rows": rows,
            "rows_per_s": round(rows / med_wall, 1) if med_wall > 0 else None,
        }
    )
    return out
