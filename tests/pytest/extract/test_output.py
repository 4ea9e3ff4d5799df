"""What the loaders print about a snapshot that did not change: read, unchanged, nothing loaded.

Two real ``python -m extract catalog`` runs against the shared fleet: the categories endpoint is a
snapshot, so the second run reads every row again, finds them identical and loads nothing; its line
must say so instead of counting the rows it read as new.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from services.launcher import Fleet
from tests.pytest.extract.helpers import LoaderEnv, run_cli


def test_an_unchanged_snapshot_says_nothing_was_loaded(
    fleet: Fleet, loader: Callable[..., LoaderEnv]
) -> None:
    env = loader(fleet)
    first = run_cli(env, "catalog")
    assert first.returncode == 0, first.stderr[-3000:]
    loaded = re.search(r"catalog/categories: done: \d+ pages, (\d+) rows read, (\d+) new", first.stderr)
    assert loaded and loaded.group(1) == loaded.group(2) != "0", first.stderr[-3000:]

    second = run_cli(env, "catalog")
    assert second.returncode == 0, second.stderr[-3000:]
    rows = loaded.group(1)
    line = next((x for x in second.stderr.splitlines() if "catalog/categories: done" in x), "")
    assert f"{rows} rows read, unchanged since the last load, nothing loaded" in line, line
    assert " new" not in line, f"an unchanged snapshot loads nothing, so no row is new: {line}"
