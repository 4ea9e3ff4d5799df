"""The stream against real services on loopback: restarts, kill -9, the batch loader beside it, faults.

Every case ends the same way: stop the producer, let the stream catch up (``--once``), then compare
``raw_events.events`` with the events service's SQLite file id for id (no gap, no duplicate, every
row in a committed load). Cases that publish also compare the incrementally maintained real-time
marts with a ``dbt run --full-refresh`` of a copy of the warehouse.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime

import pytest

from tests.pytest.support.stream_world import StreamWorld, simulating, simulating_changes


def catch_up(world: StreamWorld, *extra: str) -> str:  # used by the slow case
    """One ``--once`` batch: everything still waiting in the service, then exit 0."""
    proc = world.run(["-m", "elt.stream", "--once", "--batch-cap", "1000000", *extra], timeout=600)
    assert "stream:" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def stream_ops_rows(world: StreamWorld) -> tuple[int, int]:
    """(successful stream batches, events they loaded) from ops.runs."""
    (n, rows) = world.query(
        "select count(*), coalesce(sum(rows), 0) from ops.runs where step = 'stream' and status = 'success'"
    )[0]
    return int(n), int(rows)


# slow (make test's 15-minute budget): in make test, test_stream_resume.py kills the stream at each
# window of a commit deterministically; this random-kill whole run is in make test-all
@pytest.mark.slow
def test_kill9_restart_and_batch_loader_beside_load_every_event_once(stream_world: StreamWorld) -> None:
    """kill -9 twice at random moments, restart with the marts, run ``python -m extract events`` (same
    pipeline, same state) while the stream commits, SIGTERM: every event once, marts = full rebuild."""
    w = stream_world
    rng = random.Random(20261129)
    with simulating(w, rate=40, seed=11) as producer:
        for _ in range(2):  # kill -9 at a random moment of a running batch loop
            proc, log = w.start_stream("--no-marts")
            w.wait_batches(proc, log, 1)
            time.sleep(rng.uniform(0.0, 1.5))
            proc.kill()
            proc.wait()
        proc, log = w.start_stream()  # restart with the real-time marts
        w.wait_batches(proc, log, 1)
        batch = w.run(["-m", "extract", "events", "--wait", "300"], timeout=600)
        w.wait_batches(proc, log, 1)
        producer.set()
    w.wait_caught_up(proc, log)
    assert w.stop_stream(proc, log) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "stream stopped:" in text and "latency p50" in text
    stats = w.stats()
    assert stats["state"] == "stopped" and stats["batches"] >= 2 and stats["events"] > 0
    assert stats["latency_p95_s"] is not None and stats["latency_max_s"] >= stats["latency_p50_s"]
    assert (w.exports / "realtime" / "current" / "manifest.json").exists()
    total = w.assert_exactly_once()
    counts = w.assert_marts_equal_full_rebuild()
    assert counts["rt_events_per_minute"] > 0
    batches, rows = stream_ops_rows(w)
    assert batches >= 4 and 0 < rows <= total
    w.assert_no_lock_errors(batch.stdout + batch.stderr)
    assert "raw_events" in batch.stdout + batch.stderr


LATE_COMMIT_SHARE = 0.25
# behind changes the marts already merged, inside the loaders' lag window (lag_seconds), so raw gets them
LATE_SECONDS = 20.0


def test_late_commits_reach_the_published_realtime_marts(stream_world: StreamWorld) -> None:
    """Every kind of change, a quarter committed late, while the stream publishes and the batch loader
    loads orders beside it: the published rt_orders_today equals the orders service's own orders of
    today (id, status, updated_at), every real-time mart equals a full rebuild, and the published
    version (unchanged days of rt_events_per_minute linked from the one before) verifies and holds every
    row of the warehouse's marts."""
    w = stream_world
    today = datetime.now(UTC).date()
    with simulating_changes(w, 20, 23, LATE_COMMIT_SHARE, LATE_SECONDS) as changes:
        proc, log = w.start_stream()
        w.wait_batches(proc, log, 1)
        for _ in range(4):  # each load brings the late commits of the last one, stamped behind its mark
            time.sleep(2)
            w.run(["-m", "extract", "orders", "--wait", "300"], timeout=600)
            w.wait_batches(proc, log, 1)
    w.run(["-m", "extract", "orders", "--wait", "300"], timeout=600)  # the producer is stopped: all of it
    with simulating(w, rate=40, seed=24) as producer:  # events, so a batch rebuilds the marts after that
        w.wait_batches(proc, log, 1)
        producer.set()
    w.wait_caught_up(proc, log)
    assert w.stop_stream(proc, log) == 0, log.read_text()[-3000:]
    assert datetime.now(UTC).date() == today, "the case ran across midnight (UTC); run it again"

    truth = w.service_orders_placed_on(today)
    late_orders = {key for commit in changes.late for table, key in commit["records"] if table == "orders"}
    late_today = late_orders & {order_id for order_id, _, _ in truth}
    assert len(late_today) >= 5, f"too few late commits on today's orders to test anything: {len(late_today)}"
    published = w.published_orders_today()
    wrong, missing = sorted(published - truth), sorted(truth - published)
    assert not wrong and not missing, (
        f"published rt_orders_today: {len(wrong)} rows the orders service does not hold (stale versions; "
        f"first {wrong[:3]}), {len(missing)} of its rows missing (first {missing[:3]})"
    )
    w.assert_exactly_once()
    counts = w.assert_marts_equal_full_rebuild()
    assert counts["rt_orders_today"] == len(truth)
    # published with a file per day of rt_events_per_minute: the unchanged days linked, all rows there
    events = w.assert_published_realtime_marts_whole()
    assert events["rows"] == counts["rt_events_per_minute"]
    w.assert_no_lock_errors()


FAULT_SETS = [
    ({"rate_limit_every": 3, "retry_after": 1}, "429"),
    ({"error_burst": 4, "error_status": 503}, "503"),
    ({"drop_every": 4}, "dropped"),
    ({"truncate_every": 3}, None),
]


def test_stream_carries_on_through_service_faults(stream_world: StreamWorld) -> None:
    """429s, a 5xx burst, dropped connections and truncated pages while streaming: nothing lost."""
    w = stream_world
    admin = w.fleet.admin("events")
    fired: dict[str, dict] = {}
    with simulating(w, rate=40, seed=13) as producer:
        proc, log = w.start_stream("--no-marts")
        try:
            w.wait_batches(proc, log, 1)
            for faults, status in FAULT_SETS:
                admin.reset_stats()
                admin.set_faults(faults)
                w.wait_batches(proc, log, 2, timeout=180)
                fired[str(faults)] = admin.stats()
                if status is not None:
                    seen = {s for by_status in fired[str(faults)]["by_path"].values() for s in by_status}
                    assert status in seen, f"fault {faults} never fired: {fired[str(faults)]}"
        finally:
            admin.clear_faults()
        producer.set()
    w.wait_caught_up(proc, log)
    assert w.stop_stream(proc, log) == 0
    assert "retrying" in log.read_text(), "no failed request was retried"
    w.assert_exactly_once()


@pytest.mark.slow
@pytest.mark.timeout(3600)  # its own waits (600 s per batch, 1800 s for the flow) exceed the default
def test_many_kill9s_beside_a_full_elt_run(stream_world_full: StreamWorld) -> None:
    """Ten+ kill -9s at random moments (start-up, fetch, load, dbt, publish) while `python -m elt run`
    (extract, dbt build, publish) competes for the lock; then exact raw and marts."""
    w = stream_world_full
    rng = random.Random(7)
    flow: dict[str, object] = {}

    def elt_run() -> None:
        p = w.run(["-m", "elt", "run", "--no-services"], timeout=1800, check=False)
        flow["code"], flow["out"] = p.returncode, p.stdout + p.stderr

    runner = threading.Thread(target=elt_run)
    with simulating(w, rate=40, seed=14):
        for i in range(12):
            if i == 3:
                runner.start()
            proc, log = w.start_stream()
            if rng.random() < 0.7:
                w.wait_batches(proc, log, 1, timeout=600)
            time.sleep(rng.uniform(0.0, 3.0))
            proc.kill()
            proc.wait()
        proc, log = w.start_stream()
        w.wait_batches(proc, log, 2, timeout=600)
        runner.join(timeout=1800)
        assert w.stop_stream(proc, log) == 0
    catch_up(w)
    w.assert_exactly_once()
    w.assert_marts_equal_full_rebuild()
    assert flow.get("code") == 0, str(flow.get("out"))[-5000:]
    w.assert_no_lock_errors(str(flow["out"]))
