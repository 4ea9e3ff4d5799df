"""The stream suite's world: a private fleet whose events a simulator keeps appending, a private
warehouse/exports/run folder, and helpers to start, signal and kill ``python -m elt stream`` as a
real child process and to check the result against the events service's own SQLite file."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson

from core import lock
from publish import versions
from publish.verify import verify_version
from services.launcher import Fleet
from services.simulator import Simulator
from services.store.timefmt import parse_us
from tests.pytest.support.envs import isolated_env
from tests.pytest.support.fleets import new_fleet
from tests.pytest.support.paths import REPO
from transform import dbt_runner

LOCK_ERROR_MARKERS = ("Could not set lock", "WarehouseBusy", "warehouse is locked", "Traceback")


@dataclass
class StreamWorld:
    root: Path
    fleet: Fleet
    data_dir: Path
    warehouse: Path
    exports: Path
    run_dir: Path
    env: dict[str, str]
    logs: list[Path] = field(default_factory=list)

    # -- processes ----------------------------------------------------------------------------------
    def run(self, args: list[str], timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``python <args>`` to completion in the world's environment."""
        proc = subprocess.run(
            [sys.executable, *args], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            out, err = proc.stdout[-4000:], proc.stderr[-6000:]
            raise AssertionError(f"{args} exited {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}")
        return proc

    def start_stream(self, *args: str) -> tuple[subprocess.Popen, Path]:
        """Start ``python -m elt stream`` in the background; output goes to a log file."""
        log = self.root / f"stream-{len(self.logs) + 1}.log"
        self.logs.append(log)
        handle = log.open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "elt.stream", "--batch-max-seconds", "0.5", *args],
            cwd=REPO,
            env=self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        handle.close()
        return proc, log

    def stop_stream(self, proc: subprocess.Popen, log: Path, timeout: float = 120) -> int:
        """SIGTERM and wait: the stream finishes its batch in flight and exits."""
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(
                f"stream ignored SIGTERM for {timeout}s; log:\n{log.read_text()[-4000:]}"
            ) from None

    # -- observations -------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        import json

        path = self.run_dir / "stream-stats.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def wait_batches(self, proc: subprocess.Popen, log: Path, count: int, timeout: float = 240) -> None:
        """Wait until the log shows ``count`` more committed batches ("batch N ok")."""
        start = log.read_text().count(" ok: ")
        deadline = time.monotonic() + timeout
        while log.read_text().count(" ok: ") < start + count:
            if proc.poll() is not None:
                raise AssertionError(f"stream exited {proc.returncode}:\n{log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {count} batches in {timeout}s:\n{log.read_text()[-4000:]}")
            time.sleep(0.2)

    def wait_caught_up(self, proc: subprocess.Popen, log: Path, timeout: float = 300) -> int:
        """With the producer stopped: wait until the stream has committed the service's newest event."""
        newest = self.service_event_ids()[-1]
        deadline = time.monotonic() + timeout
        while self.stats().get("committed_event_id", 0) < newest:
            if proc.poll() is not None:
                raise AssertionError(f"stream exited {proc.returncode}:\n{log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"stream did not reach event {newest} in {timeout}s:\n{log.read_text()[-4000:]}"
                )
            time.sleep(0.2)
        return newest

    def service_event_ids(self) -> list[int]:
        """Every event id the events service holds (its SQLite file, read-only)."""
        con = sqlite3.connect(f"file:{self.data_dir / 'events.sqlite'}?mode=ro", uri=True)
        try:
            return [r[0] for r in con.execute("select event_id from events order by event_id")]
        finally:
            con.close()

    @contextlib.contextmanager
    def world_lock(self, owner: str) -> Iterator[None]:
        """The warehouse lock of *this world's* warehouse, waiting for any writer. ``warehouse_lock``
        finds its file from ``SHOP_WAREHOUSE`` of the calling process, which in a test is not the
        world's (without this the test would lock the repo's own warehouse and not exclude the stream)."""
        with contextlib.ExitStack() as held:
            saved = os.environ.get("SHOP_WAREHOUSE")
            os.environ["SHOP_WAREHOUSE"] = str(self.warehouse)
            try:  # the lock file is resolved on entry; the environment is put back at once
                held.enter_context(lock.warehouse_lock(owner, wait=300))
            finally:
                if saved is None:
                    os.environ.pop("SHOP_WAREHOUSE", None)
                else:
                    os.environ["SHOP_WAREHOUSE"] = saved
            yield

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        """A read-only query on the warehouse, under the lock (waits for any writer)."""
        with (
            self.world_lock("stream test: read"),
            duckdb.connect(str(self.warehouse), read_only=True) as con,
        ):
            return con.execute(sql, params or []).fetchall()

    def raw_event_ids(self) -> tuple[list[int], list[int]]:
        """(all raw ids, ids of committed loads only), both sorted, duplicates kept."""
        all_ids = [r[0] for r in self.query("select event_id from raw_events.events order by 1")]
        committed = [
            r[0]
            for r in self.query(
                "select event_id from raw_events.events where _dlt_load_id in "
                "(select load_id from raw_events._dlt_loads where status = 0) order by 1"
            )
        ]
        return all_ids, committed

    def assert_exactly_once(self) -> int:
        """Raw events equal the service's events: same ids, none twice, all committed."""
        service = self.service_event_ids()
        all_ids, committed = self.raw_event_ids()
        dupes = len(all_ids) - len(set(all_ids))
        assert dupes == 0, f"{dupes} duplicate event ids in raw_events.events"
        missing = sorted(set(service) - set(committed))
        extra = sorted(set(all_ids) - set(service))
        assert not missing, f"{len(missing)} service events missing from raw (first {missing[:10]})"
        assert not extra, f"{len(extra)} raw events unknown to the service (first {extra[:10]})"
        assert all_ids == committed == service
        return len(service)

    def assert_marts_equal_full_rebuild(self) -> dict[str, int]:
        """The stream's incrementally maintained real-time marts equal a ``--full-refresh`` rebuild
        of a copy of the warehouse; returns the row count per mart."""
        copy = self.root / "rebuild" / "shop.duckdb"
        copy.parent.mkdir(exist_ok=True)
        with self.world_lock("stream test: copy"):
            shutil.copyfile(self.warehouse, copy)
        env = dbt_runner.dbt_env({**self.env, "SHOP_WAREHOUSE": str(copy)})
        env["SHOP_WAREHOUSE"] = str(copy)
        target = self.root / "rebuild" / "target"
        proc = subprocess.run(
            [
                *dbt_runner.dbt_command(["run", "--full-refresh", "-s", "tag:realtime"]),
                "--target-path",
                str(target),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        counts: dict[str, int] = {}
        with (
            self.world_lock("stream test: compare"),
            duckdb.connect(str(self.warehouse), read_only=True) as con,
        ):
            con.execute(f"attach '{copy}' as rebuilt (read_only)")
            (db,) = con.execute("select current_database()").fetchone()
            tables = con.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_catalog = ? and table_name like 'rt\\_%' escape '\\' order by 2",
                [db],
            ).fetchall()
            assert {t for _, t in tables} >= {"rt_events_per_minute", "rt_funnel_live", "rt_orders_today"}
            for schema, table in tables:
                ours = f'"{db}"."{schema}"."{table}"'
                theirs = f'rebuilt."{schema}"."{table}"'
                (only_ours,) = con.execute(
                    f"select count(*) from (select * from {ours} except all select * from {theirs})"
                ).fetchone()
                (only_theirs,) = con.execute(
                    f"select count(*) from (select * from {theirs} except all select * from {ours})"
                ).fetchone()
                assert (only_ours, only_theirs) == (0, 0), (
                    f"{table}: {only_ours} rows only in the stream's mart, {only_theirs} only in the rebuild"
                )
                counts[table] = con.execute(f"select count(*) from {ours}").fetchone()[0]
        return counts

    def service_orders_placed_on(self, day: date) -> set[tuple[int, str, int]]:
        """(order id, status, updated_at in epoch microseconds) of every order the orders service holds
        that was placed on ``day`` (UTC): what rt_orders_today must show. Its SQLite file, read-only."""
        con = sqlite3.connect(f"file:{self.data_dir / 'orders.sqlite'}?mode=ro", uri=True)
        try:
            rows = con.execute("select order_id, status, updated_at, doc from orders").fetchall()
        finally:
            con.close()
        return {
            (order_id, status, parse_us(updated_at))
            for order_id, status, updated_at, doc in rows
            if datetime.fromtimestamp(parse_us(orjson.loads(doc)["placed_at"]) / 1e6, UTC).date() == day
        }

    def published_orders_today(self) -> set[tuple[int, str, int]]:
        """The same triples from the stream's published rt_orders_today (the resolved current version)."""
        version = (self.exports / "realtime" / "current").resolve()
        with duckdb.connect() as con:
            rows = con.execute(
                "select order_id, order_status, epoch_us(updated_at) from read_parquet(?)",
                [str(version / "rt_orders_today.parquet")],
            ).fetchall()
        return {(int(i), str(s), int(u)) for i, s, u in rows}

    def assert_published_realtime_marts_whole(self) -> dict[str, Any]:
        """The stream's current real-time version verifies against its manifest, every mart in it holds
        exactly the warehouse mart's rows as a reader sees them, and ``rt_events_per_minute`` (a file per
        day) carried its unchanged days from the version before: the same files (inode and bytes).
        Returns that mart's manifest entry."""
        version = (self.exports / "realtime" / "current").resolve()
        assert verify_version(version) == []
        manifest = versions.read_manifest(version)
        with self.world_lock("stream test: published marts"), duckdb.connect() as con:
            con.execute("set TimeZone = 'UTC'")
            con.execute(f"attach '{self.warehouse}' as wh (read_only)")
            for name, entry in manifest["marts"].items():
                files = [str(version / f["path"]) for f in entry["files"]]
                cast = ", ".join(  # the files' UTC timestamps as the warehouse's naive ones
                    f'cast("{c["name"]}" as {c["warehouse_type"]}) as "{c["name"]}"' for c in entry["schema"]
                )
                published = f"select {cast} from read_parquet({files!r}, hive_partitioning = false)"
                ours = f"select * from wh.{entry['relation']}"
                (diff,) = con.execute(
                    f"select count(*) from (({published} except all {ours}) union all "
                    f"({ours} except all {published}))"
                ).fetchone()
                (rows,) = con.execute(f"select count(*) from ({published})").fetchone()
                assert diff == 0 and rows == entry["rows"], f"{name}: {diff} rows differ, {rows} read"
        events = manifest["marts"]["rt_events_per_minute"]
        assert events["partition_grain"] == "day" and len(events["files"]) > 1
        carried = events.get("partitions_carried") or events.get("carried_over")
        assert carried, "no day of rt_events_per_minute was carried from the version before"
        before = versions.versions_dir(self.exports / "realtime") / carried["from_version"]
        linked = [f for f in events["files"] if "written_in_version" in f or "carried_over" in events]
        assert linked
        for f in linked:
            a, b = before / f["path"], version / f["path"]
            assert a.stat().st_ino == b.stat().st_ino and a.read_bytes() == b.read_bytes(), f["path"]
        return events

    def assert_no_lock_errors(self, *texts: str) -> None:
        for text in [*texts, *(p.read_text() for p in self.logs)]:
            for marker in LOCK_ERROR_MARKERS:
                assert marker not in text, f"{marker!r} reached the user:\n{text[-3000:]}"


@contextlib.contextmanager
def simulating(world: StreamWorld, rate: float, seed: int) -> Iterator[threading.Event]:
    """A steady events producer (``Simulator.run_events``) in a thread for the ``with`` block."""
    stop = threading.Event()
    sim = Simulator(world.data_dir, seed)
    thread = threading.Thread(target=sim.run_events, args=(rate,), kwargs={"stop_event": stop}, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(timeout=30)


@dataclass
class Changes:
    """What a running change producer did: its late commits so far (the simulator's records)."""

    stop: threading.Event
    late: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    error: Exception | None = None


@contextlib.contextmanager
def simulating_changes(
    world: StreamWorld, rate: float, seed: int, late_commit_share: float, late_seconds: float
) -> Iterator[Changes]:
    """Every kind of change (orders, payments, customers, events …) at ``rate`` per second, a share of
    them committed late, in a thread for the ``with`` block. ``Simulator.run`` does the same but keeps
    no record of its late commits, which the caller needs to know the case really had some."""
    changes = Changes(stop=threading.Event())
    sim = Simulator(world.data_dir, seed, late_seconds=late_seconds)

    def produce() -> None:
        started = time.monotonic()
        try:
            while not changes.stop.is_set():
                due = int((time.monotonic() - started) * rate) - changes.steps
                if due > 0:
                    summary = sim.step(due, late_commit_share)
                    changes.steps += summary["steps"]
                    changes.late.extend(summary["late"])
                changes.stop.wait(0.05)
        except Exception as exc:  # reported by the with block: a dead producer must fail the case
            changes.error = exc

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        yield changes
    finally:
        changes.stop.set()
        thread.join(timeout=30)
        sim.close()
    if changes.error is not None:
        raise AssertionError(f"the change producer failed: {changes.error!r}") from changes.error


def make_world(root: Path, port_base: int, scale: float) -> StreamWorld:
    """Start a private fleet and load the raw tables the real-time marts read (events, orders)."""
    fleet = new_fleet(root / "run", root / "data", port_base=port_base, scale=scale, seed=7)
    fleet.start()
    env = isolated_env(root, "SOURCES__", **fleet.env())
    env.update(
        {
            "SHOP_SERVICES_DATA": str(root / "data"),
            "SHOP_PORT_BASE": str(port_base),
            "SHOP_PII_KEY": "stream-test-pii-key-0123456789",
            "SHOP_LOCK_WAIT": "600",
        }
    )
    world = StreamWorld(
        root=root,
        fleet=fleet,
        data_dir=root / "data",
        warehouse=root / "warehouse" / "shop.duckdb",
        exports=root / "exports",
        run_dir=root / "run",
        env=env,
    )
    world.run(["-m", "extract", "events", "orders", "--wait", "300"])
    return world
