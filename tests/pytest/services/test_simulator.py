"""The simulator: consistent, deterministic, exactly-reported changes on real service files."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

from services.generator import generate
from services.simulator import Simulator
from services.store import check_consistency, connect, get_meta, parse_us
from services.store.records import DOC_TABLES
from services.store.timefmt import US_PER_S
from tests.pytest.support.paths import REPO

SCALE = 0.03


class FakeClock:
    """A clock that moves ``tick_us`` per reading from a fixed start, so runs are reproducible."""

    def __init__(self, start: str = "2026-11-29T01:00:00.000000Z", tick_us: int = 1000) -> None:
        self.us = parse_us(start)
        self.tick_us = tick_us

    def __call__(self) -> int:
        self.us += self.tick_us
        return self.us


@pytest.fixture(scope="module")
def base_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim-base") / "data"
    generate(path, SCALE, 3)
    return path


@pytest.fixture
def data_dir(base_data: Path, tmp_path: Path) -> Path:
    """A private copy of the generated data for one test."""
    target = tmp_path / "data"
    shutil.copytree(base_data, target)
    return target


def snapshot(data_dir: Path) -> dict[str, dict[int, bytes]]:
    """Every row of every table that a change can touch, keyed by id."""
    out: dict[str, dict[int, bytes]] = {}
    for table, spec in DOC_TABLES.items():
        con = connect(data_dir, spec.service, readonly=True)
        out[table] = dict(con.execute(f"SELECT {spec.key}, doc FROM {table}").fetchall())
        con.close()
    con = connect(data_dir, "customers", readonly=True)
    out["deletions"] = {
        k: v.encode() for k, v in con.execute("SELECT customer_id, deleted_at FROM deletions")
    }
    con.close()
    con = connect(data_dir, "catalog", readonly=True)
    history: dict[int, bytes] = {}
    for pid, price, valid_from in con.execute(
        "SELECT product_id, price_minor, valid_from FROM price_history "
        "ORDER BY product_id, valid_from, price_minor"
    ):
        history[pid] = history.get(pid, b"") + f"{price}@{valid_from};".encode()
    out["price_history"] = history
    con.close()
    return out


def diff(before: dict[str, dict[int, bytes]], after: dict[str, dict[int, bytes]]) -> tuple[dict, dict]:
    """(changed-or-removed-or-added ids, added ids) per table."""
    touched, created = {}, {}
    for table in before:
        b, a = before[table], after[table]
        touched[table] = sorted({k for k in a.keys() | b.keys() if a.get(k) != b.get(k)})
        created[table] = sorted(a.keys() - b.keys())
    return touched, created


def digest(data_dir: Path) -> str:
    h = hashlib.sha256()
    for table, rows in sorted(snapshot(data_dir).items()):
        for key in sorted(rows):
            h.update(f"{table}:{key}:".encode() + rows[key])
    return h.hexdigest()


def test_consistency_holds_after_many_steps_with_late_commits(data_dir):
    with Simulator(data_dir, seed=11) as sim:
        summary = sim.step(600, late_commit_share=0.2)
    assert sum(summary["kinds"].values()) == 600
    assert len(summary["kinds"]) >= 10, summary["kinds"]  # the mix exercises nearly every kind
    assert check_consistency(data_dir) == []


def test_summary_matches_the_database_diff(data_dir):
    before = snapshot(data_dir)
    with Simulator(data_dir, seed=5, clock=FakeClock()) as sim:
        summary = sim.step(250, late_commit_share=0.1)
    touched, created = diff(before, snapshot(data_dir))
    assert not touched.pop("categories")  # the simulator never changes the category tree
    for table in touched:
        # price_history rows are reported by product id
        assert summary["touched"][table] == touched[table], table
        if table != "price_history":
            assert summary["created"][table] == created[table], table
    assert summary["steps"] == 250 and summary["first_step"] == 0


def test_updated_at_never_goes_backwards(data_dir):
    before = snapshot(data_dir)
    with Simulator(data_dir, seed=9, clock=FakeClock()) as sim:
        sim.step(300, late_commit_share=0.5)
    after = snapshot(data_dir)
    for table in ("customers", "orders", "products", "payments", "refunds"):
        for key, raw in after[table].items():
            if key in before[table]:
                old, new = orjson.loads(before[table][key]), orjson.loads(raw)
                assert new["updated_at"] >= old["updated_at"], (table, key)


def test_same_seed_same_result_and_different_seed_differs(base_data, tmp_path):
    results = {}
    for name, seed in (("one", 21), ("two", 21), ("other", 22)):
        target = tmp_path / name
        shutil.copytree(base_data, target)
        with Simulator(target, seed=seed, clock=FakeClock()) as sim:
            sim.step(200, late_commit_share=0.1)
        results[name] = digest(target)
    assert results["one"] == results["two"]
    assert results["one"] != results["other"]


def test_event_ids_strictly_increase_and_new_orders_have_events(data_dir):
    con = connect(data_dir, "events", readonly=True)
    first_new = con.execute("SELECT MAX(event_id) FROM events").fetchone()[0] + 1
    con.close()
    with Simulator(data_dir, seed=4) as sim:
        summary = sim.step(200)
    con = connect(data_dir, "events", readonly=True)
    rows = con.execute(
        "SELECT event_id, doc FROM events WHERE event_id >= ? ORDER BY rowid", (first_new,)
    ).fetchall()
    con.close()
    ids = [r[0] for r in rows]
    assert ids == list(range(first_new, first_new + len(ids))) and ids == summary["created"]["events"]
    placed = {orjson.loads(d)["properties"]["order_id"] for _, d in rows if b'"order_placed"' in d}
    assert set(summary["created"]["orders"]) <= placed and summary["created"]["orders"]
    stamps = [orjson.loads(d)["occurred_at"] for _, d in rows]
    assert stamps == sorted(stamps)  # without late commits the feed is in time order


def updated_at(data_dir: Path, table: str, key: int) -> str | None:
    spec = DOC_TABLES[table]
    con = connect(data_dir, spec.service, readonly=True)
    row = con.execute(f"SELECT updated_at FROM {table} WHERE {spec.key} = ?", (key,)).fetchone()
    con.close()
    return row and row[0]


def test_late_commits_are_stamped_in_the_past(data_dir):
    """A late change lands below the high-water mark an ``updated_since`` loader saw just before it."""
    clock = FakeClock(tick_us=US_PER_S)  # one second per change: a 5 s late stamp falls behind earlier ones
    tables = ("customers", "orders", "payments", "refunds", "products")
    with Simulator(data_dir, seed=2, clock=clock, late_seconds=5) as sim:
        sim.step(20)
        high_water = max(filter(None, (snapshot_max(data_dir, t) for t in tables)))
        summary = sim.step(8, late_commit_share=1.0)
    assert len(summary["late"]) == 8
    below = []
    for late in summary["late"]:
        assert late["stamped_at"] < late["committed_at"]
        for table, key in late["records"]:
            stamp = updated_at(data_dir, table, key) if table in tables else None
            if stamp is not None:
                assert stamp >= late["stamped_at"]
                if stamp < high_water:
                    below.append((table, key))
    assert below, "no late change fell below the earlier high-water mark"
    assert check_consistency(data_dir) == []


def snapshot_max(data_dir: Path, table: str) -> str | None:
    spec = DOC_TABLES[table]
    con = connect(data_dir, spec.service, readonly=True)
    value = con.execute(f"SELECT MAX(updated_at) FROM {table}").fetchone()[0]
    con.close()
    return value


def test_steps_are_counted_in_meta_and_continue(data_dir):
    with Simulator(data_dir, seed=8) as sim:
        first = sim.step(30)
    with Simulator(data_dir, seed=8) as sim:
        second = sim.step(30)
    assert first["first_step"] == 0 and second["first_step"] == 30
    assert get_meta(connect(data_dir, "events", readonly=True))["simulator_steps"] == "60"
    assert not set(first["created"]["orders"]) & set(second["created"]["orders"])


def test_run_at_a_rate_and_the_events_producer(data_dir):
    stop = threading.Event()
    with Simulator(data_dir, seed=6) as sim:
        timer = threading.Timer(0.6, stop.set)
        timer.start()
        totals = sim.run(rate=200, stop_event=stop)
        timer.join()
        con = connect(data_dir, "events", readonly=True)
        before = con.execute("SELECT MAX(event_id) FROM events").fetchone()[0]
        emitted = sim.run_events(500, duration=0.5)
        after = con.execute("SELECT MAX(event_id) FROM events").fetchone()[0]
        con.close()
    assert sum(totals.values()) > 0
    assert emitted > 0 and after - before == emitted
    assert check_consistency(data_dir) == []


def test_cli_steps_json_prints_the_whole_summary(data_dir):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.simulator",
            "--data-dir",
            str(data_dir),
            "--steps",
            "25",
            "--seed",
            "3",
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
        timeout=120,
    )
    summary = orjson.loads(result.stdout)
    assert summary["steps"] == 25 and sum(summary["kinds"].values()) == 25
    assert check_consistency(data_dir) == []


def test_refuses_a_data_dir_without_generated_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        Simulator(tmp_path / "empty", seed=1)
    assert not (tmp_path / "empty").exists()
