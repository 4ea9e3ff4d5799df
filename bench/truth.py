"""Ground truth for correctness checks, read straight from the services' own SQLite files.

Why from SQLite and not the API: a check that asked the same API the measured client used would share
its bugs. The contract (docs/contracts.md) says each table stores the served JSON in `doc`, so counts
and money sums here are exactly what a complete pull must reproduce.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

# endpoint name → (sqlite file stem, table, JSON money field or None)
SOURCES: dict[str, tuple[str, str, str | None]] = {
    "customers": ("customers", "customers", None),
    "deletions": ("customers", "deletions", None),
    "products": ("catalog", "products", "price_minor"),
    "categories": ("catalog", "categories", None),
    "orders": ("orders", "orders", "total_minor"),
    "payments": ("payments", "payments", "amount_minor"),
    "refunds": ("payments", "refunds", "amount_minor"),
    "events": ("events", "events", None),
}


@dataclass(frozen=True)
class Truth:
    """Rows and money per endpoint as the services hold them right now."""

    rows: dict[str, int]
    money: dict[str, int]

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def read_truth(data_dir: Path) -> Truth:
    """Count every served table and sum its money column (read-only, safe while services run)."""
    rows: dict[str, int] = {}
    money: dict[str, int] = {}
    for endpoint, (stem, table, money_field) in SOURCES.items():
        path = data_dir / f"{stem}.sqlite"
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows[endpoint] = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            if money_field:
                # doc is orjson bytes; cast to text so SQLite parses it as JSON, not as JSONB.
                expr = f"json_extract(CAST(doc AS TEXT), '$.{money_field}')"
                total = con.execute(f"SELECT coalesce(sum({expr}), 0) FROM {table}").fetchone()[0]
                money[endpoint] = int(total)
        finally:
            con.close()
    return Truth(rows, money)
