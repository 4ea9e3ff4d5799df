"""Publishing only what changed (publish/carry.py), against a real DuckDB file and the fake dbt manifest of
helpers.py: an unchanged mart keeps the current version's files (hard links, sha256 checked), the manifest
stays complete and verified and says what was carried, an unchanged publish makes no version, and a
failure still leaves the current version untouched."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import time
from pathlib import Path

import duckdb
import pytest

from publish import partition, versions
from publish.publish import PublishError, PublishResult, publish
from publish.verify import verify_version
from tests.pytest.elt.helpers import EltPaths
from transform import dbt_artifacts


def _publish(paths: EltPaths, **kwargs: object) -> PublishResult:
    return publish(
        dbt_artifacts.publish_specs(),
        warehouse=paths.warehouse,
        exports=paths.exports,
        dbt_invocation={"invocation_id": "inv-1"},
        reuse=True,
        **kwargs,
    )


def _change_one_customer(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update main_marts.dim_customers set segment = 'c' where customer_id = 3")


def test_an_unchanged_publish_makes_no_new_version(fake_project: EltPaths) -> None:
    first = _publish(fake_project)
    assert not first.unchanged and first.bytes_written > 0
    again = _publish(fake_project)
    assert again.unchanged and again.version_id == first.version_id
    assert again.bytes_written == 0 and all(m.carried for m in again.marts)
    assert [m.rows for m in again.marts] == [m.rows for m in first.marts]
    assert versions.list_versions(fake_project.exports) == [first.version_id]
    assert not list(versions.versions_dir(fake_project.exports).glob("*.partial"))
    # without reuse (`elt export`) every publish is a new version, as before
    plain = publish(
        dbt_artifacts.publish_specs(), warehouse=fake_project.warehouse, exports=fake_project.exports
    )
    assert plain.version_id != first.version_id and not any(m.carried for m in plain.marts)


def test_only_the_changed_mart_is_written_the_rest_is_carried(fake_project: EltPaths) -> None:
    first = _publish(fake_project)
    _change_one_customer(fake_project.warehouse)
    second = _publish(fake_project)
    assert not second.unchanged and second.version_id != first.version_id
    carried = {m.name for m in second.marts if m.carried}
    assert carried == {"fct_orders", "rt_orders_today"}
    dim = next(m for m in second.marts if m.name == "dim_customers")
    assert second.bytes_written == dim.bytes

    old = versions.read_manifest(first.version_dir)
    new = versions.read_manifest(second.version_dir)
    assert set(new["marts"]) == set(old["marts"])  # complete
    assert "carried_over" not in new["marts"]["dim_customers"]
    for name in carried:
        entry = new["marts"][name]
        assert entry["carried_over"] == {
            "from_version": first.version_id,
            "written_in_version": first.version_id,
        }
        assert entry["content_checksum"] == old["marts"][name]["content_checksum"]
        assert entry["files"] == old["marts"][name]["files"]
        for f in entry["files"]:  # the same file: a hard link, byte for byte the previous version's
            a, b = first.version_dir / f["path"], second.version_dir / f["path"]
            assert a.read_bytes() == b.read_bytes()
            assert os.stat(a).st_ino == os.stat(b).st_ino
    assert verify_version(second.version_dir) == []
    assert verify_version(first.version_dir) == []

    # carried twice: the files still name the version that wrote them
    _change_one_customer_back = "update main_marts.dim_customers set segment = 'd' where customer_id = 3"
    with duckdb.connect(str(fake_project.warehouse)) as con:
        con.execute(_change_one_customer_back)
    third = _publish(fake_project)
    entry = versions.read_manifest(third.version_dir)["marts"]["fct_orders"]
    assert entry["carried_over"] == {
        "from_version": second.version_id,
        "written_in_version": first.version_id,
    }
    assert verify_version(third.version_dir) == []


def test_a_failure_after_carrying_leaves_the_current_version_untouched(fake_project: EltPaths) -> None:
    first = _publish(fake_project)
    _change_one_customer(fake_project.warehouse)

    def fail(staging: Path) -> None:
        assert (staging / "fct_orders").is_dir()  # the carried files are linked in by now
        raise OSError("disk full (injected)")

    with pytest.raises(OSError, match="injected"):
        _publish(fake_project, after_write=fail)
    assert versions.current_version_id(fake_project.exports) == first.version_id
    assert versions.list_versions(fake_project.exports) == [first.version_id]
    assert not list(versions.versions_dir(fake_project.exports).glob("*.partial"))
    assert verify_version(fake_project.exports / "current") == []  # its files survived the cleanup


def test_a_damaged_file_is_never_carried(fake_project: EltPaths) -> None:
    first = _publish(fake_project)
    entry = versions.read_manifest(first.version_dir)["marts"]["fct_orders"]
    victim = first.version_dir / entry["files"][0]["path"]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.chmod(victim, 0o644)
    victim.write_bytes(bytes(data))
    _change_one_customer(fake_project.warehouse)
    with pytest.raises(PublishError, match="no longer matches its manifest"):
        _publish(fake_project)
    assert versions.current_version_id(fake_project.exports) == first.version_id
    assert not list(versions.versions_dir(fake_project.exports).glob("*.partial"))


def test_a_new_pii_key_writes_every_mart(fake_project: EltPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    """Marts hashed with another key are never carried (a rotation rewrites everything)."""
    first = _publish(fake_project)
    monkeypatch.setenv("SHOP_PII_KEY", "another-test-pii-key-987654")
    rotated = _publish(fake_project, rotate_pii_key=True)
    assert rotated.version_id != first.version_id and not any(m.carried for m in rotated.marts)


def test_a_partitioned_mart_rewrites_only_its_changed_partitions(fake_project: EltPaths) -> None:
    """fct_orders (partitioned by order_month): one order changed in one month; that month's file is
    written again, every other month's file is the previous version's, the whole mart verifies."""
    first = _publish(fake_project)
    old = versions.read_manifest(first.version_dir)["marts"]["fct_orders"]
    assert len(old["files"]) > 3 and all("partition_checksum" in f for f in old["files"])
    with duckdb.connect(str(fake_project.warehouse)) as con:
        (month,) = con.execute(
            "update main_marts.fct_orders set status = 'changed' where order_id = 7 returning order_month"
        ).fetchone()
    second = _publish(fake_project)
    entry = versions.read_manifest(second.version_dir)["marts"]["fct_orders"]
    assert "carried_over" not in entry
    assert entry["partitions_carried"] == {"from_version": first.version_id, "files": len(old["files"]) - 1}
    changed = [f for f in entry["files"] if f["partition"]["order_month"] == month.isoformat()]
    assert len(changed) == 1 and "written_in_version" not in changed[0]
    for f in entry["files"]:
        a, b = first.version_dir / f["path"], second.version_dir / f["path"]
        same_file = os.stat(a).st_ino == os.stat(b).st_ino
        assert same_file == (f is not changed[0]), f["path"]
        assert ("written_in_version" in f) == same_file
    fct = next(m for m in second.marts if m.name == "fct_orders")
    assert second.bytes_written == changed[0]["bytes"] == fct.bytes - fct.linked_bytes
    assert verify_version(second.version_dir) == []
    with duckdb.connect(str(fake_project.warehouse), read_only=True) as con:
        (status,) = con.execute(
            f"select status from read_parquet('{second.version_dir / changed[0]['path']}') where order_id = 7"
        ).fetchone()
    assert status == "changed"


def _hour_specs() -> list[dbt_artifacts.MartSpec]:
    """fct_orders partitioned as the real-time rt_events_per_minute is (a grain of a naive timestamp):
    a file per hour of ``shipped_at`` (500 orders a minute apart: 9 hours)."""
    return [
        dataclasses.replace(s, partition_by="shipped_at", partition_grain="hour")
        if s.name == "fct_orders"
        else s
        for s in dbt_artifacts.publish_specs()
    ]


def _by_hour(paths: EltPaths, **kwargs: object) -> PublishResult:
    return publish(_hour_specs(), warehouse=paths.warehouse, exports=paths.exports, reuse=True, **kwargs)


def _read_all(folder: Path) -> list[tuple]:
    """Every row of a partitioned mart's folder, as a reader sees it (DuckDB over the flat files)."""
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        return con.execute(
            f"select order_id, status, shipped_at from read_parquet('{folder}/*.parquet') order by order_id"
        ).fetchall()


def test_a_grained_partition_rewrites_only_the_hours_that_changed(fake_project: EltPaths) -> None:
    """A partition grain (meta publish_partition_grain): one file per hour of a timestamp, the mart's
    columns unchanged; after one order changed, one hour vanished and a new one appeared, only the
    changed and the new hour are written, the other hours' files are the previous version's (the same
    inode, the same bytes), the manifest verifies and a reader sees every row."""
    first = _by_hour(fake_project)
    old = versions.read_manifest(first.version_dir)["marts"]["fct_orders"]
    assert old["partition_by"] == "shipped_at" and old["partition_grain"] == "hour"
    hours = sorted(f["partition"]["shipped_at"] for f in old["files"])
    assert hours == [f"2026-01-02T0{h}" for h in range(9)]
    assert [f["path"] for f in old["files"]] == [f"fct_orders/shipped_at_{h}.parquet" for h in hours]
    assert [c["name"] for c in old["schema"]] == [
        "order_id", "order_month", "total_minor", "generation", "status", "placed_at", "shipped_at",
    ]  # fmt: skip
    assert verify_version(first.version_dir) == []

    with duckdb.connect(str(fake_project.warehouse)) as con:
        con.execute("update main_marts.fct_orders set status = 'changed' where order_id = 200")  # 03:20
        con.execute("delete from main_marts.fct_orders where shipped_at >= timestamp '2026-01-02 08:00'")
        con.execute(
            "insert into main_marts.fct_orders select 9000, date '2026-01-01', 1, 0, 'new', "
            "timestamptz '2026-01-01 00:00:00+00', timestamp '2026-01-03 12:30'"
        )
        (rows,) = con.execute("select count(*) from main_marts.fct_orders").fetchone()
    second = _by_hour(fake_project)
    entry = versions.read_manifest(second.version_dir)["marts"]["fct_orders"]
    assert entry["rows"] == rows
    assert entry["partitions_carried"] == {"from_version": first.version_id, "files": 7}
    written = {f["partition"]["shipped_at"] for f in entry["files"] if "written_in_version" not in f}
    assert written == {"2026-01-02T03", "2026-01-03T12"}
    for f in entry["files"]:
        if "written_in_version" in f:
            a, b = first.version_dir / f["path"], second.version_dir / f["path"]
            assert os.stat(a).st_ino == os.stat(b).st_ino and a.read_bytes() == b.read_bytes()
            assert f == {**next(o for o in old["files"] if o["path"] == f["path"]), **f}
    fct = next(m for m in second.marts if m.name == "fct_orders")
    assert fct.linked_bytes == sum(f["bytes"] for f in entry["files"] if "written_in_version" in f)
    assert verify_version(second.version_dir) == []
    seen = _read_all(second.version_dir / "fct_orders")
    assert len(seen) == rows and (200, "changed") in {(i, s) for i, s, _ in seen}
    assert seen[-1][0] == 9000 and "2026-01-02T08" not in {
        f["partition"]["shipped_at"] for f in entry["files"]
    }

    # a full publish of the same warehouse (nothing carried) writes the same content
    full = publish(_hour_specs(), warehouse=fake_project.warehouse, exports=fake_project.root / "full")
    again = versions.read_manifest(full.version_dir)["marts"]["fct_orders"]
    assert again["content_checksum"] == entry["content_checksum"] and again["rows"] == rows
    key = lambda f: f["path"]  # noqa: E731
    assert [(f["path"], f["rows"], f["partition_checksum"]) for f in sorted(again["files"], key=key)] == [
        (f["path"], f["rows"], f["partition_checksum"]) for f in sorted(entry["files"], key=key)
    ]
    assert _by_hour(fake_project).unchanged  # nothing changed since: no new version


def test_a_damaged_partition_file_is_never_linked(fake_project: EltPaths) -> None:
    """An unchanged partition's file that was damaged after it was linked and checked once (so this
    process remembers its sha256) is hashed again and refused: the write changed its modification time."""
    first = _by_hour(fake_project)
    past = time.time() - 60  # settled files: the publisher remembers their sha256 once it checked them
    for f in (first.version_dir / "fct_orders").iterdir():
        os.utime(f, (past, past))

    def change(order_id: int) -> None:
        with duckdb.connect(str(fake_project.warehouse)) as con:
            con.execute(
                f"update main_marts.fct_orders set status = status || '+' where order_id = {order_id}"
            )

    change(200)  # hour 03
    second = _by_hour(fake_project)
    victim = second.version_dir / "fct_orders" / "shipped_at_2026-01-02T05.parquet"
    assert (
        os.stat(victim).st_ino == os.stat(first.version_dir / victim.relative_to(second.version_dir)).st_ino
    )
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    os.chmod(victim, 0o644)
    victim.write_bytes(bytes(data))
    change(201)
    with pytest.raises(PublishError, match="no longer matches its manifest"):
        _by_hour(fake_project)
    assert versions.current_version_id(fake_project.exports) == second.version_id
    assert not list(versions.versions_dir(fake_project.exports).glob("*.partial"))


def test_an_unknown_grain_is_a_clear_error(fake_project: EltPaths) -> None:
    specs = [
        dataclasses.replace(s, partition_by="shipped_at", partition_grain="week")
        if s.name == "fct_orders"
        else s
        for s in dbt_artifacts.publish_specs()
    ]
    with pytest.raises(PublishError, match="publish_partition_grain 'week' is not one of"):
        publish(specs, warehouse=fake_project.warehouse, exports=fake_project.exports)
    assert versions.current_version_id(fake_project.exports) is None


def test_a_rollup_keeps_the_current_period_fine_and_the_past_coarse(fake_project: EltPaths) -> None:
    """Grain hour, rollup day: yesterday's and older rows go to a file per day, today's to a file per
    hour; a row added this hour rewrites only this hour's file."""
    specs = [
        dataclasses.replace(s, partition_rollup="day") if s.partition_grain else s for s in _hour_specs()
    ]
    with duckdb.connect(str(fake_project.warehouse)) as con:
        (hour,) = con.execute(
            "insert into main_marts.fct_orders select 9001, date '2026-01-01', 1, 0, 'now', "
            "timestamptz '2026-01-01 00:00:00+00', date_trunc('hour', timezone('UTC', now())) "
            "returning strftime(shipped_at, '%Y-%m-%dT%H')"
        ).fetchone()
    first = publish(specs, warehouse=fake_project.warehouse, exports=fake_project.exports, reuse=True)
    entry = versions.read_manifest(first.version_dir)["marts"]["fct_orders"]
    assert (entry["partition_grain"], entry["partition_rollup"]) == ("hour", "day")
    assert sorted(f["partition"]["shipped_at"] for f in entry["files"]) == ["2026-01-02", hour]
    with duckdb.connect(str(fake_project.warehouse)) as con:
        con.execute(
            "insert into main_marts.fct_orders select 9002, date '2026-01-01', 1, 0, 'now', "
            "timestamptz '2026-01-01 00:00:00+00', date_trunc('hour', timezone('UTC', now()))"
        )
    second = publish(specs, warehouse=fake_project.warehouse, exports=fake_project.exports, reuse=True)
    entry = versions.read_manifest(second.version_dir)["marts"]["fct_orders"]
    if {f["partition"]["shipped_at"] for f in entry["files"]} != {"2026-01-02", hour}:
        pytest.skip("the hour or the day turned between the two publishes; run it again")
    linked = [f["partition"]["shipped_at"] for f in entry["files"] if "written_in_version" in f]
    assert linked == ["2026-01-02"]
    assert verify_version(second.version_dir) == [] and entry["rows"] == 502
    assert len(_read_all(second.version_dir / "fct_orders")) == 502


def test_the_rollup_cut_moves_rows_from_fine_to_coarse_files() -> None:
    """The same rows split at two moments: before the month turns, 2026-11-30's rows are a day file;
    after, November is one month file. Keys, buckets and the ranges that select them agree."""
    spec = dataclasses.replace(
        dbt_artifacts.MartSpec("m", "model.m", None, "s", "m"),
        partition_by="t",
        partition_grain="day",
        partition_rollup="month",
    )
    rows = "select * from (values (timestamp '2026-11-30 10:00'), (timestamp '2026-10-02 00:00')) v(t)"
    with duckdb.connect() as con:
        for now, keys in (
            (dt.datetime(2026, 11, 30, 23, 59, tzinfo=dt.UTC), ["2026-10", "2026-11-30"]),
            (dt.datetime(2026, 12, 1, 0, 1, tzinfo=dt.UTC), ["2026-10", "2026-11"]),
        ):
            scheme = partition.Scheme.of(spec, now)
            got = con.execute(
                f"select distinct {scheme.key_sql('TIMESTAMP')} from ({rows}) order by 1"
            ).fetchall()
            buckets = con.execute(
                f"select distinct {scheme.bucket_key_sql('TIMESTAMP')} from ({rows}) "
                f"group by {scheme.bucket_sql()} order by 1"
            ).fetchall()
            assert [k for (k,) in got] == [k for (k,) in buckets] == keys
            for key in keys:
                (n,) = con.execute(
                    f"select count(*) from ({rows}) where {scheme.select_keys_sql('TIMESTAMP', [key])}"
                ).fetchone()
                assert n == 1, (now, key)
