"""Publishing against a real DuckDB file and a small fake dbt manifest: files, manifest, checksums,
retention, and failures that must leave the current version untouched."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from publish import versions
from publish.publish import Attachment, PublishError, publish
from publish.verify import verify_version
from tests.pytest.elt.helpers import EltPaths, fill_marts
from tests.pytest.support.paths import REPO
from transform import dbt_artifacts


def _publish(paths: EltPaths, **kwargs: object):
    return publish(
        dbt_artifacts.publish_specs(),
        warehouse=paths.warehouse,
        exports=paths.exports,
        dbt_invocation={"invocation_id": "inv-1"},
        **kwargs,
    )


def test_specs_come_from_the_manifest(fake_project: EltPaths) -> None:
    specs = {s.name: s for s in dbt_artifacts.publish_specs()}
    assert sorted(specs) == ["dim_customers", "fct_orders", "rt_orders_today"]
    assert specs["fct_orders"].partition_by == "order_month"
    assert specs["dim_customers"].partition_by is None
    assert (specs["fct_orders"].schema, specs["fct_orders"].alias) == ("main_marts", "fct_orders")


def test_publish_writes_verified_files_and_manifest(fake_project: EltPaths) -> None:
    result = _publish(fake_project)
    current = fake_project.exports / "current"
    assert current.is_symlink()
    assert current.resolve() == result.version_dir.resolve()
    assert (fake_project.exports / "CURRENT").read_text().strip() == result.version_id
    manifest = json.loads((current / "manifest.json").read_text())
    assert manifest["version"] == result.version_id
    assert manifest["dbt"]["invocation_id"] == "inv-1"
    assert manifest["sources"]["raw_orders"]["committed_loads"] == 1  # status 1 (pending) not counted
    assert manifest["sources"]["raw_orders"]["latest_load_id"] == "1700000000.000001"
    assert set(manifest["marts"]) == {"dim_customers", "fct_orders", "rt_orders_today"}

    # independent check with pyarrow: every listed file exists, its bytes and rows match the manifest
    for name, mart in manifest["marts"].items():
        total = 0
        for entry in mart["files"]:
            path = current / entry["path"]
            assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
            meta = pq.read_metadata(path)
            assert meta.num_rows == entry["rows"]
            total += meta.num_rows
            if meta.num_row_groups:
                assert meta.row_group(0).column(0).compression == "ZSTD"
        assert total == mart["rows"], name
    assert manifest["marts"]["fct_orders"]["rows"] == 500
    assert manifest["marts"]["dim_customers"]["rows"] == 50
    assert manifest["marts"]["rt_orders_today"]["rows"] == 0  # empty mart still ships its schema

    # partitioned by month: flat files named after their month (no Hive folders), each holding only its
    # month, the column kept inside the files with its own type
    fct = manifest["marts"]["fct_orders"]
    assert len(fct["files"]) > 1
    assert not [p for p in (current / "fct_orders").iterdir() if p.is_dir()]
    for entry in fct["files"]:
        month = entry["partition"]["order_month"]
        assert entry["path"] == f"fct_orders/order_month_{month}.parquet"
        months = pq.read_table(current / entry["path"]).column("order_month").to_pylist()
        assert {str(m) for m in months} == {month}
    types = {c["name"]: c for c in fct["schema"]}
    assert types["total_minor"]["warehouse_type"] == "HUGEINT"
    assert types["generation"]["description"] == "which fill wrote the row"
    assert verify_version(result.version_dir) == []


def test_verify_detects_tampering(fake_project: EltPaths) -> None:
    result = _publish(fake_project)
    manifest = versions.read_manifest(result.version_dir)
    victim = result.version_dir / manifest["marts"]["dim_customers"]["files"][0]["path"]
    victim.write_bytes(victim.read_bytes()[:-10])
    problems = verify_version(result.version_dir)
    assert any("sha256 mismatch" in p for p in problems)


def test_old_versions_pruned_current_kept(fake_project: EltPaths) -> None:
    ids = [_publish(fake_project, keep=2).version_id for _ in range(5)]
    assert versions.list_versions(fake_project.exports) == ids[-3:]  # current + 2 old
    assert versions.current_version_id(fake_project.exports) == ids[-1]
    # roll back to an old one; pruning to zero keeps only that current version
    versions.switch_current(fake_project.exports, ids[-3])
    assert versions.prune(fake_project.exports, keep=0) == [ids[-2], ids[-1]]
    assert versions.list_versions(fake_project.exports) == [ids[-3]]
    assert verify_version(fake_project.exports / "current") == []


def _rewrite_one_file(staging: Path, mart: str, sql_filter: str) -> None:
    """Replace the first Parquet file of ``mart`` with a filtered copy of itself (same schema)."""
    import duckdb

    victim = sorted((staging / mart).rglob("*.parquet"))[0]
    tmp = victim.with_name("tmp.parquet.x")
    with duckdb.connect() as con:
        con.execute(f"copy (select * from read_parquet('{victim}') {sql_filter}) to '{tmp}' (format parquet)")
    os.replace(tmp, victim)


@pytest.mark.parametrize(
    ("sql_filter", "message"),
    [
        ("where order_id % 2 = 0", "row count mismatch"),
        ("order by order_id", None),  # same rows reordered: must still publish
    ],
)
def test_row_loss_fails_and_leaves_current_untouched(
    fake_project: EltPaths, sql_filter: str, message: str | None
) -> None:
    first = _publish(fake_project)
    fill_marts(fake_project.warehouse, generation=1)
    hook = lambda staging: _rewrite_one_file(staging, "fct_orders", sql_filter)  # noqa: E731
    if message is None:
        assert _publish(fake_project, after_write=hook).version_id != first.version_id
        return
    with pytest.raises(PublishError, match=message):
        _publish(fake_project, after_write=hook)
    assert versions.current_version_id(fake_project.exports) == first.version_id
    assert verify_version(fake_project.exports / "current") == []
    assert versions.list_versions(fake_project.exports) == [first.version_id]
    assert not list((fake_project.exports / "versions").glob("*.partial"))
    # a re-run converges on the new data
    again = _publish(fake_project)
    assert versions.current_version_id(fake_project.exports) == again.version_id
    assert versions.read_manifest(again.version_dir)["marts"]["fct_orders"]["rows"] == 500


def test_altered_values_fail_the_content_checksum(fake_project: EltPaths) -> None:
    first = _publish(fake_project)

    def alter(staging: Path) -> None:
        import duckdb

        victim = staging / "dim_customers.parquet"
        tmp = staging / "tmp.x"
        with duckdb.connect() as con:
            con.execute(
                f"copy (select * replace (segment || '!' as segment) from read_parquet('{victim}')) "
                f"to '{tmp}' (format parquet)"
            )
        os.replace(tmp, victim)

    with pytest.raises(PublishError, match="content checksum mismatch"):
        _publish(fake_project, after_write=alter)
    assert versions.current_version_id(fake_project.exports) == first.version_id


KILLED_PUBLISHER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from core import settings
    from transform import dbt_artifacts
    from publish.publish import publish

    def hang(staging):
        print("WRITTEN", staging, flush=True)
        time.sleep(600)

    publish(dbt_artifacts.publish_specs(), warehouse=settings.warehouse_path(),
            exports=settings.exports_dir(), after_write=hang)
    """
)


def test_kill_9_mid_write_then_rerun_converges(fake_project: EltPaths) -> None:
    first = _publish(fake_project)
    fill_marts(fake_project.warehouse, generation=2)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_PUBLISHER], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("WRITTEN"), line
    staging = Path(line.split(maxsplit=1)[1].strip())
    assert staging.name.endswith(".partial") and any(staging.rglob("*.parquet"))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    assert versions.current_version_id(fake_project.exports) == first.version_id
    assert verify_version(fake_project.exports / "current") == []
    assert versions.list_versions(fake_project.exports) == [first.version_id]

    again = _publish(fake_project)
    assert not staging.exists()  # the dead publish's leftovers are cleaned up
    assert versions.current_version_id(fake_project.exports) == again.version_id
    rows = pq.read_table(again.version_dir / "dim_customers.parquet").column("generation").to_pylist()
    assert set(rows) == {2}


def test_nothing_to_publish_is_an_error(elt_env: EltPaths) -> None:
    fill_marts(elt_env.warehouse)
    (elt_env.target / "manifest.json").write_text(json.dumps({"nodes": {}}))
    with pytest.raises(PublishError, match="no models tagged 'publish'"):
        _publish(elt_env)
    assert not (elt_env.exports / "current").exists()


def test_missing_relation_is_an_error(fake_project: EltPaths) -> None:
    import duckdb

    with duckdb.connect(str(fake_project.warehouse)) as con:
        con.execute("drop table main_marts.dim_customers")
    with pytest.raises(PublishError, match=r"main_marts\.dim_customers not found"):
        _publish(fake_project)
    assert not (fake_project.exports / "current").exists()
    assert not list((fake_project.exports / "versions").iterdir())


def test_secrets_never_reach_the_manifest(fake_project: EltPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__ORDERS__CLIENT_SECRET", "orders-secret-abcdef")
    result = publish(
        dbt_artifacts.publish_specs(),
        warehouse=fake_project.warehouse,
        exports=fake_project.exports,
        dbt_invocation={"invocation_id": "inv-2", "note": "harmless"},
    )
    text = (result.version_dir / "manifest.json").read_text()
    assert "orders-secret-abcdef" not in text
    assert "test-pii-key-0123456789" not in text
    with pytest.raises(PublishError, match="secret value would appear"):
        publish(
            dbt_artifacts.publish_specs(),
            warehouse=fake_project.warehouse,
            exports=fake_project.exports,
            dbt_invocation={"invocation_id": "orders-secret-abcdef"},
        )
    assert versions.current_version_id(fake_project.exports) == result.version_id


def test_files_read_as_a_dataset_with_utc_timestamps_and_say_what_they_are(fake_project: EltPaths) -> None:
    """The partitioned mart opens as a Hive dataset (the call that failed with the column in both the
    folder names and the files); naive warehouse timestamps come back UTC-adjusted; every file's
    key-value metadata names its mart and version."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    result = _publish(fake_project)
    folder = result.version_dir / "fct_orders"
    table = ds.dataset(folder, partitioning="hive").to_table()
    assert table.num_rows == 500
    assert table.schema.field("order_month").type == pa.date32()
    assert table.schema.field("shipped_at").type == pa.timestamp("us", tz="UTC")  # naive in the warehouse
    assert table.schema.field("placed_at").type == pa.timestamp("us", tz="UTC")
    first = min(table.column("shipped_at").to_pylist())
    assert (first.isoformat(), first.utcoffset().total_seconds()) == ("2026-01-02T00:00:00+00:00", 0)
    for path in [*folder.iterdir(), result.version_dir / "dim_customers.parquet"]:
        meta = pq.read_metadata(path).metadata
        assert meta[b"shop_elt.version"] == result.version_id.encode()
        assert meta[b"shop_elt.mart"] == (b"fct_orders" if path.parent == folder else b"dim_customers")
    schema = {
        c["name"]: c for c in versions.read_manifest(result.version_dir)["marts"]["fct_orders"]["schema"]
    }
    assert (schema["shipped_at"]["type"], schema["shipped_at"]["warehouse_type"]) == (
        "TIMESTAMP WITH TIME ZONE",
        "TIMESTAMP",
    )


def test_manifest_names_the_git_revision_and_each_marts_high_water_mark(fake_project: EltPaths) -> None:
    from core import ops_log

    manifest = versions.read_manifest(_publish(fake_project).version_dir)
    assert manifest["publisher"]["git_revision"] == ops_log.git_revision()
    assert manifest["publisher"]["git_revision"]  # the tests run in a git checkout
    # fill_marts: placed_at = 2026-01-01 00:00 UTC + i minutes for i < 500
    assert manifest["marts"]["fct_orders"]["high_water_mark"] == {
        "column": "placed_at",
        "value": "2026-01-01T08:19:00+00:00",
    }
    assert manifest["marts"]["dim_customers"]["high_water_mark"] is None  # no meta: none recorded


def test_an_attachment_is_listed_with_its_sha256(fake_project: EltPaths) -> None:
    seen: list[dict] = []

    def build(staging: Path, manifest: dict) -> tuple[Path, dict]:
        seen.append(manifest)
        out = staging / "note.html"
        out.write_text(f"<p>{sum(m['rows'] for m in manifest['marts'].values())} rows</p>")
        return out, {"detail": "x"}

    result = _publish(fake_project, attachments=[Attachment("note", build)])
    manifest = versions.read_manifest(result.version_dir)
    entry = manifest["attachments"]["note"]
    assert entry["path"] == "note.html" and entry["detail"] == "x"
    assert entry["sha256"] == hashlib.sha256((result.version_dir / "note.html").read_bytes()).hexdigest()
    assert (result.version_dir / "note.html").read_text() == "<p>550 rows</p>"  # built from the marts
    assert seen[0]["version"] == result.version_id
    assert verify_version(result.version_dir) == []
    (result.version_dir / "note.html").write_text("changed")
    assert verify_version(result.version_dir) == ["note: sha256 mismatch for note.html"]


def test_a_failing_attachment_publishes_nothing(fake_project: EltPaths) -> None:
    first = _publish(fake_project)

    def broken(staging: Path, manifest: dict) -> tuple[Path, dict]:
        (staging / "half.html").write_text("<p>half")
        raise ValueError("no figures")

    with pytest.raises(PublishError, match="building the report failed: ValueError: no figures"):
        _publish(fake_project, attachments=[Attachment("report", broken)])
    assert versions.current_version_id(fake_project.exports) == first.version_id
    assert versions.list_versions(fake_project.exports) == [first.version_id]
    assert not list((fake_project.exports / "versions").glob("*.partial"))
