"""A warehouse restored from a backup (older than the run folder's dlt state) is caught up exactly, by the
batch loader and by the stream's first commit: the local state that is ahead of it is dropped, never
trusted (extract/statesync.py)."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable

import duckdb
import pytest

from core.settings import warehouse_path
from elt.stream.raw import RawLoader
from extract.pipelines import make_pipeline
from extract.runner import run
from extract.statesync import local_state_is_ahead
from services.launcher import Fleet
from services.simulator.simulator import Simulator
from tests.pytest.extract.helpers import LoaderEnv, assert_matches_source

ALL = ("customers", "catalog", "orders", "payments", "events")


def _ahead(services: tuple[str, ...]) -> dict[str, bool]:
    con = duckdb.connect(str(warehouse_path()))
    try:
        return {s: bool(local_state_is_ahead(make_pipeline(s, con), con.cursor())) for s in services}
    finally:
        con.close()


def test_a_restored_warehouse_is_caught_up_not_skipped(
    own_fleet: Fleet,
    loader: Callable[..., LoaderEnv],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = loader(own_fleet)
    assert run([]).failures == {}
    backup = env.root / "backup.duckdb"
    shutil.copyfile(env.warehouse, backup)  # the operator's backup, taken here
    with Simulator(own_fleet.data_dir, seed=11) as sim:
        sim.step(200)
    assert run([]).failures == {}  # the local state moves past the backup
    assert_matches_source(env, own_fleet.data_dir, ALL)

    # the warehouse is lost and the backup restored; the run folder (dlt state) is the newer one
    restored = dataclasses.replace(env, warehouse=env.root / "restored" / "shop.duckdb")
    restored.warehouse.parent.mkdir()
    shutil.copyfile(backup, restored.warehouse)
    monkeypatch.setenv("SHOP_WAREHOUSE", str(restored.warehouse))
    assert _ahead(ALL) == dict.fromkeys(ALL, True)
    result = run([])
    assert result.failures == {}
    assert_matches_source(restored, own_fleet.data_dir, ALL)  # nothing between backup and now is skipped
    assert "the local dlt state is not this warehouse's" in caplog.text
    assert _ahead(ALL) == dict.fromkeys(ALL, False)


def test_the_stream_resumes_from_the_restored_warehouse(
    own_fleet: Fleet, loader: Callable[..., LoaderEnv], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = loader(own_fleet)
    assert run(["events"]).failures == {}
    backup = env.root / "backup.duckdb"
    shutil.copyfile(env.warehouse, backup)
    with Simulator(own_fleet.data_dir, seed=12) as sim:
        sim.run_events(200, duration=1.0)
    assert run(["events"]).failures == {}
    restored = dataclasses.replace(env, warehouse=env.root / "restored" / "shop.duckdb")
    restored.warehouse.parent.mkdir()
    shutil.copyfile(backup, restored.warehouse)
    monkeypatch.setenv("SHOP_WAREHOUSE", str(restored.warehouse))

    loader_ = RawLoader()
    loader_.finish_pending()  # the stream's first step under the lock: align, then dlt's sync
    con = duckdb.connect(str(restored.warehouse), read_only=True)
    (in_backup,) = con.execute("select max(event_id) from raw_events.events").fetchone()
    con.close()
    con = duckdb.connect(str(env.warehouse), read_only=True)
    (in_newer,) = con.execute("select max(event_id) from raw_events.events").fetchone()
    con.close()
    assert in_newer > in_backup, "the premise: events arrived after the backup"
    assert loader_.committed_id() == in_backup, "the stream must resume where this warehouse stopped"
