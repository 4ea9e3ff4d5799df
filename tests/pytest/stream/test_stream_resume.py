"""kill -9 of the stream at each moment in which dlt's own resume loads rows twice, then a plain
``--once`` run: every event exactly once in ``raw_events.events``, every load recorded once.

The kill is deterministic (tests/pytest/stream/killed_stream.py: the real stream, killed right after
the dlt call that opens the window); the fix is extract/resume.py. The killed run loads through dlt
(``--raw-writer dlt``: the stream's default direct append has no such window, being one DuckDB
transaction); the run after it uses the default, so it also shows the direct append finishing a dlt
package first and appending after its cursor. The same windows arise when ``python -m extract`` is
killed, and the stream finishes such a package the same way. These are the windows the
many-kill9s case (test_stream_e2e.py) hit by chance: "279 duplicate event ids" in one load.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from services.simulator import Simulator
from tests.pytest.support.stream_world import REPO, StreamWorld

STREAM_ONCE = ["--once", "--no-marts", "--batch-cap", "1000000"]
THROUGH_DLT = ["--raw-writer", "dlt"]  # the killed run: its commit is dlt's, whose windows are tested

# kill point -> (simulator seed, the line the recovering run logs when it repairs what that kill left)
POINTS = {
    "events-inserted": (31, "removed them so that finishing the package loads them once"),
    "extract-committed": (32, "the pipeline state was not saved before the run was killed"),
    "load-recorded": (33, "was committed before the run was killed; archiving it"),
}


def add_events(world: StreamWorld, seed: int, count: int) -> None:
    """About ``count`` new events in the events service, written now (the service reads its file)."""
    sim = Simulator(world.data_dir, seed)
    try:
        sim.run_events(count * 10, duration=0.1, tick_s=0.01)
    finally:
        sim.close()


def duplicated_loads(world: StreamWorld) -> list[tuple[str, int]]:
    return world.query(
        "select load_id, count(*) from raw_events._dlt_loads group by 1 having count(*) > 1 order by 1"
    )


@pytest.mark.parametrize("point", list(POINTS))
def test_kill9_inside_dlt_commit_loads_every_event_once(point: str, stream_world: StreamWorld) -> None:
    """Killed at ``point`` of a commit, the next run finishes the package exactly once and carries on
    from the cursor the package committed (no id twice, none missing, one ``_dlt_loads`` row each)."""
    w = stream_world
    seed, repaired = POINTS[point]
    add_events(w, seed, count=300)
    killed = subprocess.run(
        [sys.executable, "-m", "tests.pytest.stream.killed_stream", point, *STREAM_ONCE, *THROUGH_DLT],
        cwd=REPO,
        env=w.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, f"the stream was not killed at {point}: {killed.stderr[-3000:]}"
    add_events(w, seed + 100, count=100)  # the run after the kill has its own too
    proc = w.run(["-m", "elt.stream", *STREAM_ONCE])
    out = proc.stdout + proc.stderr
    w.assert_exactly_once()
    twice = duplicated_loads(w)
    assert not twice, f"loads recorded twice in raw_events._dlt_loads: {twice}"
    assert repaired in out, f"the run after the kill at {point} repaired nothing:\n{out[-3000:]}"
