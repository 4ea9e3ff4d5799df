"""kill -9 of the whole flow (flow process, loader child, dbt child: the process group) at every step,
then a plain re-run: the warehouse and the published Parquet must equal a clean run, and no kill may
ever move ``exports/current``.

Short form (in ``make test``): one chain on one workspace — killed during load, then during dbt's mart
models — then the recovery run. Slow form: each step on its own (extract, normalize, load, dbt models,
dbt tests, snapshots, publish), and chains of kills at random moments.
"""

from __future__ import annotations

import random

import pytest

from tests.pytest.faults.helpers import KILL_POINTS, flow_killed_after, flow_killed_at
from tests.pytest.support.fingerprints import assert_matches_clean
from tests.pytest.support.workspace import Workspace, flow
from tests.pytest.support.world import Reference


def _kill_and_check(ws: Workspace, point: str, full_build: bool = False) -> None:
    before = ws.current_version()
    out = flow_killed_at(ws, point, full_build=full_build)
    assert out.killed_at == point, f"the flow finished before the '{point}' kill point: {out.describe()}"
    assert out.returncode != 0, out.describe()
    assert ws.current_version() == before, f"kill during {point} moved exports/current"


def _recover(ws: Workspace, reference: Reference, context: str) -> None:
    out = flow(ws)
    assert out.returncode == 0, f"re-run after {context} failed: {out.describe()}"
    assert "elt run OK" in out.output
    assert_matches_clean(reference.prints, ws, context)


@pytest.mark.slow
def test_kill_chain_load_then_dbt(workspace, reference: Reference, fleet_clean) -> None:
    ws = workspace("chain")
    for point in ("load", "dbt models"):
        _kill_and_check(ws, point)
    _recover(ws, reference, "kill -9 during load, then during dbt models")


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_kill_at_each_step(point: str, workspace, reference: Reference, fleet_clean) -> None:
    ws = workspace(point.replace(" ", "-"))
    after_a_run = point in ("dbt tests", "snapshots", "publish")
    if after_a_run:
        # a first complete run, so the kill also tests that an existing version survives; the killed
        # run then builds with --full-build (with nothing new it would skip dbt and publish)
        assert flow(ws).returncode == 0
    _kill_and_check(ws, point, full_build=after_a_run)
    _recover(ws, reference, f"kill -9 during {point}")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_kill_at_random_moments(seed: int, workspace, reference: Reference, fleet_clean) -> None:
    rng = random.Random(seed)
    ws = workspace(f"random-{seed}")
    moments = [round(rng.uniform(1.0, 45.0), 1) for _ in range(4)]
    for moment in moments:
        before = ws.current_version()
        out = flow_killed_after(ws, moment, full_build=True)  # every run does the whole work
        if out.killed_at is None:  # the run finished before the moment: it must have succeeded
            assert out.returncode == 0, out.describe()
        else:
            assert ws.current_version() == before, f"kill at {moment}s moved exports/current"
    _recover(ws, reference, f"kill -9 at random moments {moments}")
