"""What one loader run did: rows per table, what it read, failures, endpoints walked; and the records
made of it for the run log (``ops.run_endpoints``) and the flow (``--outcome-file``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from core.atomic_files import write_atomic


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


def write_outcome(path: Path, result: RunResult, names: list[str]) -> None:
    """``{"loaded": [...], "failed": {name: message}}`` for the flow (messages as logged: no secrets),
    written whole or not at all."""
    failed = {name: result.failures[name] for name in names if name in result.failures}
    text = json.dumps({"loaded": [n for n in names if n not in failed], "failed": failed}, indent=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text + "\n")
