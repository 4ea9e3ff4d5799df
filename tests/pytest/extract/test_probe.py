"""The "anything new?" probe (extract/probe.py) against real services: nothing is ever missed - not a
change found by the probe, not one that lands between the probe and the walk, not an erasure left by a
run stopped between its load and its deletions, not a changed snapshot. (A rerun with nothing new,
probed and not loaded: test_load.py::test_full_load_equals_source_and_rerun_loads_nothing.)"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

import pytest

from extract import loading, probe
from extract.runner import run
from services.launcher import Fleet
from services.simulator.simulator import Simulator
from tests.pytest.extract.helpers import LoaderEnv, assert_matches_source

ALL = ("customers", "catalog", "orders", "payments", "events")


def probed(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[bool]]:
    """Record every probe's verdict per service (the real probe runs)."""
    verdicts: dict[str, list[bool]] = {}
    real = probe.probe_service

    def spy(service, *args, **kwargs):
        verdict = real(service, *args, **kwargs)
        verdicts.setdefault(service.name, []).append(verdict.unchanged)
        return verdict

    monkeypatch.setattr(probe, "probe_service", spy)
    return verdicts


@pytest.mark.slow  # a fleet of its own and six loads (make test-all)
def test_nothing_is_missed_around_the_probe(
    own_fleet: Fleet, loader: Callable[..., LoaderEnv], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changes of every kind (updates, new records, erasures, events) before a run are found by the
    probe; changes landing after a service's probe and before the walks (the probe said "nothing new"
    for some, "load" for others) are at or after the run's cutoff and load with the next run. An erasure
    a stopped run left in raw (its load committed, its deletions never ran) and a changed snapshot (no
    cursor: compared by digest) make their service load."""
    env = loader(own_fleet)
    assert run([]).failures == {}
    with Simulator(own_fleet.data_dir, seed=11) as sim:
        sim.step(150)
        sim.change("erase", 2)
        sim.change("browse_session", 3)
        verdicts = probed(monkeypatch)
        real = probe.probe_service

        def probe_then_change(service, *args, **kwargs):
            verdict = real(service, *args, **kwargs)
            sim.step(15)
            sim.change("browse_session", 2)
            return verdict

        monkeypatch.setattr(probe, "probe_service", probe_then_change)
        assert run([]).failures == {}
        monkeypatch.setattr(probe, "probe_service", real)
    # the changes before the run were seen by every probe that had any
    assert all(verdicts[s] == [False] for s in ("customers", "orders", "events")), verdicts
    after = run([])  # loads what landed after the probes of the run before
    assert after.failures == {} and after.rows > 0, after.table_rows
    assert_matches_source(env, own_fleet.data_dir, ALL)
    verdicts = probed(monkeypatch)
    quiet = run([])
    assert quiet.rows == 0 and verdicts == {s: [True] for s in ALL}, (quiet.table_rows, verdicts)

    # a run stopped between its load and its deletions: the erased keys are in raw's feed, their rows too
    with Simulator(own_fleet.data_dir, seed=5) as sim:
        sim.change("erase", 3)
    deletes = loading.apply_deletes
    monkeypatch.setattr(loading, "apply_deletes", lambda pipeline, service: 0)
    assert run(["customers"]).failures == {}
    monkeypatch.setattr(loading, "apply_deletes", deletes)
    assert _erased_left(env) == 3
    # a category renamed at the source: a snapshot without a cursor, found by its digest
    db = sqlite3.connect(own_fleet.data_dir / "catalog.sqlite")
    with db:
        cid, doc = db.execute("select category_id, doc from categories order by 1 limit 1").fetchone()
        record = json.loads(doc)
        record["name"] = record["name"] + " (renamed)"
        db.execute("update categories set doc = ? where category_id = ?", [json.dumps(record), cid])
    db.close()

    verdicts = probed(monkeypatch)
    result = run([])

    assert result.failures == {}
    assert verdicts["customers"] == [False] and verdicts["catalog"] == [False], verdicts
    assert verdicts["orders"] == verdicts["payments"] == verdicts["events"] == [True], verdicts
    assert result.table_rows.get(("catalog", "categories")), result.table_rows  # a snapshot reloads whole
    assert _erased_left(env) == 0
    con = env.con()
    try:
        name = con.execute("select name from raw_catalog.categories where category_id = ?", [cid]).fetchone()
    finally:
        con.close()
    assert name == (record["name"],)
    assert_matches_source(env, own_fleet.data_dir, ALL)


def _erased_left(env: LoaderEnv) -> int:
    """Customers still in raw although the deletions feed in raw erased them."""
    con = env.con()
    try:
        return con.execute(
            "select count(*) from raw_customers.customers where customer_id in "
            "(select customer_id from raw_customers.deletions)"
        ).fetchone()[0]
    finally:
        con.close()
