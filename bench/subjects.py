"""What a measured subject is, and how to find out whether a part of the project can be measured yet.

Why explicit availability: parts land at different times; a part that is not there must show up in the
report as "not available: <why>", never silently vanish from the table.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.checks import Check
from bench.measure import Measurement


@dataclass
class Subject:
    """One command measured side by side with others in a group."""

    name: str
    cmd: list[str]
    check: Callable[[Measurement], Check]
    env: dict[str, str] = field(default_factory=dict)
    prepare: Callable[[], None] | None = None  # unmeasured set-up before every run
    label: str = ""  # what it is, for the report
    profile: bool = True  # worth a py-spy profile when its target is missed
    server_pids: list[int] = field(default_factory=list)  # the fleet serving it (CPU is reported)


@dataclass
class Group:
    """Subjects measured interleaved (A B C …, then reversed) and the ones that could not run."""

    name: str
    title: str
    subjects: list[Subject] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    setup: Callable[[], None] | None = None  # unmeasured, once before the first run
    # Runs that must happen in order (extract → dbt → publish on one warehouse). Chains are interleaved
    # and reversed between repeats like single subjects; empty means one chain per subject.
    chains: list[list[Subject]] = field(default_factory=list)

    def ordered_chains(self) -> list[list[Subject]]:
        return self.chains or [[s] for s in self.subjects]


def probe(args: list[str], cwd: Path, timeout: float = 60) -> str | None:
    """Run `python <args>` (e.g. `-m extract --help`); None if it works, else why not."""
    try:
        proc = subprocess.run(
            [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return f"`python {' '.join(args)}` timed out"
    if proc.returncode == 0:
        return None
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return f"`python {' '.join(args)}` failed: {lines[-1] if lines else f'rc={proc.returncode}'}"
