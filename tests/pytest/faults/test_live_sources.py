"""Live sources: the flow publishes while the services keep changing, and is exact once they stop.

The simulator writes throughout (``Simulator.run`` in a thread, 50 changes/s, 10 % late commits stamped
5 s in the past) while ``python -m elt run --no-services`` runs N times back to back against a fleet on a
private copy of the data. Every run must exit 0 and publish a new version: the cross-service checks
(paid orders fully paid, money conserved, references resolve) hold strictly because the marts publish
only settled orders (docs/consistency.md). Then the simulator stops, the cut passes its last change, and
one more run must reconcile every mart, in the warehouse and in the published Parquet, with the
services' own SQLite data to the cent (tests/pytest/dbt/truth.py): per order, per placement day and
country, per daily-revenue cell, per customer, and the payment, line, cohort and funnel totals.

The cut's assumptions are set for this simulator: a commit lands at most its late-commit delay plus
its write time after the stamp (MAX_COMMIT_DELAY), and one change stamps a cause and its effect alike
(SETTLE). The loaders' lag window (30 s) covers that delay.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from publish import versions
from services.launcher import Fleet
from services.simulator import Simulator
from tests.pytest.dbt.reconcile import exports_connection, mart_differences
from tests.pytest.dbt.truth import compute
from tests.pytest.support.fleets import running_fleet
from tests.pytest.support.workspace import Outcome, Workspace, flow
from tests.pytest.support.world import SCALE

RATE = 50.0  # changes per second
LATE_SHARE = 0.1
LATE_SECONDS = 5.0
MAX_COMMIT_DELAY = 8.0  # late commits land LATE_SECONDS after their stamp, plus the write itself
SETTLE = 1.0
FLOW_TIMEOUT = 1200.0  # one flow on a shared 2-core machine while the simulator writes


class LiveSimulator:
    """``Simulator.run`` in a thread for the ``with`` block; the stamp of its last change after it stops."""

    def __init__(self, data_dir: Path, seed: int) -> None:
        self.data_dir = data_dir
        self.seed = seed
        self.stop_event = threading.Event()
        self.totals: dict[str, int] = {}
        self.error: BaseException | None = None
        self.stopped_at = 0.0
        self._thread = threading.Thread(target=self._run, name="live-simulator", daemon=True)

    def _run(self) -> None:
        try:
            with Simulator(self.data_dir, self.seed, late_seconds=LATE_SECONDS) as sim:
                self.totals = sim.run(RATE, stop_event=self.stop_event, late_commit_share=LATE_SHARE)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def __enter__(self) -> LiveSimulator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self._thread.join(timeout=60)
        self.stopped_at = time.time()  # every change is stamped at or before this (late ones earlier)


@pytest.fixture
def live_fleet(data_copy: Path, tmp_path: Path) -> Iterator[Fleet]:
    """A fleet serving a private copy of the data, which the simulator changes while it serves."""
    with running_fleet(tmp_path / "live-run", data_copy, scale=SCALE, seed=42) as fl:
        yield fl


def in_flight_orders(ws: Workspace) -> int:
    """Orders loaded but not settled after the last run: what the marts held back."""
    with duckdb.connect(str(ws.warehouse), read_only=True) as con:
        sql = "select count(*) from intermediate.int_order_settlement where not is_settled"
        (n,) = con.execute(sql).fetchone()
    return int(n)


def published_problems(ws: Workspace, data_dir: Path) -> list[str]:
    """Differences between the truth and the marts, in the warehouse and in the current version."""
    truth = compute(data_dir)
    with duckdb.connect(str(ws.warehouse), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        problems = [f"warehouse: {p}" for p in mart_differences(con, truth)]
    current = versions.resolve_current(ws.exports)
    assert current is not None, "nothing published"
    with exports_connection(current) as con:
        problems += [f"published {current.name}: {p}" for p in mart_differences(con, truth)]
    assert len(truth.orders) > 1000 and truth.daily_revenue, "too little data for a meaningful reconciliation"
    return problems


@pytest.mark.parametrize(
    "runs",
    [
        # slow as well (make test's 15-minute budget): the quick form to run by hand
        pytest.param(2, id="2-runs", marks=[pytest.mark.slow, pytest.mark.timeout(3600)]),
        pytest.param(10, id="10-runs", marks=[pytest.mark.slow, pytest.mark.timeout(10800)]),
    ],
)
def test_live_runs_publish_then_reconcile_to_the_cent(
    runs: int, workspace, live_fleet: Fleet, data_copy: Path
) -> None:
    ws = workspace("live", fleet_env=live_fleet.env())
    ws.env.update(SHOP_MAX_COMMIT_DELAY_SECONDS=str(MAX_COMMIT_DELAY), SHOP_SETTLE_SECONDS=str(SETTLE))
    published: list[str] = []
    held_back: list[int] = []
    with LiveSimulator(data_copy, seed=runs) as sim:
        for i in range(1, runs + 1):
            out: Outcome = flow(ws, timeout=FLOW_TIMEOUT)
            assert out.returncode == 0, f"live run {i}/{runs} did not publish: {out.describe()}"
            version = ws.current_version()
            assert version and version not in published, f"live run {i}/{runs} published no new version"
            published.append(version)
            held_back.append(in_flight_orders(ws))
    assert sim.error is None, f"the simulator failed: {sim.error!r}"
    assert sim.totals.get("pay", 0) > 0 and sim.totals.get("new_order", 0) > 0, sim.totals
    print(f"live runs: {runs}, simulated {sim.totals}, orders in flight after each run {held_back}")
    assert any(held_back), "no run saw an order in flight: the case did not exercise the cut"

    # the cut must pass the last change: every source commit has landed and its effects are stamped
    time.sleep(max(0.0, sim.stopped_at + MAX_COMMIT_DELAY + SETTLE + 1.0 - time.time()))
    final = flow(ws, timeout=FLOW_TIMEOUT)
    assert final.returncode == 0, final.describe()
    assert in_flight_orders(ws) == 0, "orders still in flight after the sources stopped"
    problems = published_problems(ws, data_copy)
    assert not problems, "after the sources stopped the marts differ from them:\n" + "\n".join(problems)
