"""``--allow-partial`` below the flow: which marts a failed source makes stale (dbt's lineage), how a
partial version carries them from the current one and marks itself, and how the loader reports which
sources failed. A real DuckDB file, the real publisher and a small fake dbt manifest (helpers.py); the
whole flow with a source down is tests/pytest/faults/test_partial_flow.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from extract.result import RunResult, write_outcome
from publish import partial, versions
from publish.partial import Partial, dbt_sources_of, read_failures
from publish.publish import PublishError, publish
from publish.verify import verify_version
from tests.pytest.elt.helpers import EltPaths, fill_marts
from tests.pytest.support.paths import REPO
from transform import dbt_artifacts


def _lineage(target: Path) -> None:
    """dim_customers reads the events source through an intermediate model; the others read orders."""
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["sources"] = {
        "source.shop.events.events": {"schema": "raw_events"},
        "source.shop.orders.orders": {"schema": "raw_orders"},
    }
    manifest["parent_map"] = {
        "model.shop.int_sessions": ["source.shop.events.events"],
        "model.shop.dim_customers": ["model.shop.int_sessions", "model.shop.fct_orders"],
        "model.shop.fct_orders": ["source.shop.orders.orders"],
        "model.shop.rt_orders_today": ["model.shop.fct_orders"],
    }
    (target / "manifest.json").write_text(json.dumps(manifest))


def _publish(paths: EltPaths, run: Partial | None = None, keep: int = 5):
    specs = dbt_artifacts.publish_specs()
    if run is not None:
        specs = run.split(specs)
    return publish(
        specs,
        warehouse=paths.warehouse,
        exports=paths.exports,
        dbt_invocation={"invocation_id": "inv"},
        keep=keep,
        amend_manifest=run.hook(paths.exports) if run else None,
    )


def _generations(version_dir: Path, mart: str) -> set[int]:
    import duckdb

    files = [str(p) for p in (version_dir / mart).rglob("*.parquet")] or [
        str(version_dir / f"{mart}.parquet")
    ]
    with duckdb.connect() as con:
        return {
            r[0] for r in con.execute(f"select distinct generation from read_parquet({files})").fetchall()
        }


def test_a_partial_version_publishes_fresh_marts_and_carries_the_stale_ones(fake_project: EltPaths) -> None:
    """events failed: dim_customers (built from events) is carried from the current version, file for
    file, marked stale with the version it was built in; fct_orders and rt_orders_today are new. The
    version verifies like any other, also once the version it was carried from is pruned, and a second
    partial version keeps naming the build the stale mart comes from."""
    _lineage(fake_project.target)
    first = _publish(fake_project)
    fill_marts(fake_project.warehouse, generation=1)

    run = Partial.of({"events": "events events: connection refused"})
    second = _publish(fake_project, run, keep=0)  # keep=0: the first version is pruned right away
    assert second.pruned == [first.version_id]
    assert sorted(m.name for m in second.marts) == ["fct_orders", "rt_orders_today"]
    manifest = versions.read_manifest(second.version_dir)
    assert manifest["partial"] == {
        "failed_sources": {"events": "events events: connection refused"},
        "stale_marts": ["dim_customers"],
        "carried_from": first.version_id,
        "not_published": [],
    }
    assert manifest["marts"]["dim_customers"]["stale"] == {
        "built_in_version": first.version_id,
        "failed_sources": ["events"],
    }
    assert "stale" not in manifest["marts"]["fct_orders"]
    assert _generations(second.version_dir, "dim_customers") == {0}  # the first build's rows
    assert _generations(second.version_dir, "fct_orders") == {1}
    assert verify_version(second.version_dir) == []

    fill_marts(fake_project.warehouse, generation=2)
    third = _publish(fake_project, Partial.of({"events": "down again"}))
    again = versions.read_manifest(third.version_dir)
    assert again["partial"]["carried_from"] == second.version_id
    assert again["marts"]["dim_customers"]["stale"]["built_in_version"] == first.version_id
    assert _generations(third.version_dir, "fct_orders") == {2}
    assert verify_version(third.version_dir) == []

    complete = _publish(fake_project)
    assert "partial" not in versions.read_manifest(complete.version_dir)
    assert _generations(complete.version_dir, "dim_customers") == {2}


def test_the_first_partial_version_names_what_it_could_not_carry(fake_project: EltPaths) -> None:
    _lineage(fake_project.target)
    result = _publish(fake_project, Partial.of({"events": "down"}))
    manifest = versions.read_manifest(result.version_dir)
    assert manifest["partial"]["not_published"] == ["dim_customers"]
    assert manifest["partial"]["carried_from"] is None
    assert "dim_customers" not in manifest["marts"]
    assert verify_version(result.version_dir) == []


def test_a_damaged_file_is_not_carried_and_nothing_is_published(fake_project: EltPaths) -> None:
    _lineage(fake_project.target)
    first = _publish(fake_project)
    damaged = next((first.version_dir).glob("dim_customers*"))
    damaged.chmod(0o644)
    damaged.write_bytes(damaged.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(
        PublishError, match=r"dim_customers: dim_customers\.parquet of version \S+ no longer matches"
    ):
        _publish(fake_project, Partial.of({"events": "down"}))
    assert versions.current_version_id(fake_project.exports) == first.version_id
    assert versions.list_versions(fake_project.exports) == [first.version_id]


def test_when_every_mart_depends_on_a_failed_source_nothing_is_published(fake_project: EltPaths) -> None:
    _lineage(fake_project.target)
    with pytest.raises(PublishError, match="every published mart depends on a failed source"):
        Partial.of({"orders": "down", "events": "down"}).split(dbt_artifacts.publish_specs())


def test_the_failed_services_dbt_sources_come_from_the_projects_yaml() -> None:
    """Every dbt source reading a service's raw schema, the deferred-records sources included."""
    assert dbt_sources_of(["orders"]) == ["orders", "orders_deferred"]
    assert dbt_sources_of(["events"]) == ["events"]
    run = Partial.of({"payments": "down"})
    assert run.exclude_args() == ["--exclude", "source:payments+", "source:payments_deferred+"]


def test_the_loaders_outcome_file_names_the_failed_sources(tmp_path: Path) -> None:
    path = tmp_path / "outcome.json"
    result = RunResult(failures={"events": "events events: connection refused"})
    write_outcome(path, result, ["orders", "events"])
    assert read_failures(path) == {"events": "events events: connection refused"}
    write_outcome(path, RunResult(failures={"orders": "x", "events": "y"}), ["orders", "events"])
    assert read_failures(path) is None  # nothing loaded: not a partial run
    write_outcome(path, RunResult(), ["orders"])
    assert read_failures(path) is None  # nothing failed
    assert read_failures(tmp_path / "absent.json") is None  # the loader never got that far


def test_allow_partial_refuses_a_pii_key_rotation() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "elt", "run", partial.FLAG, "--rotate-pii-key", "--no-services"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "cannot be combined with --rotate-pii-key" in proc.stderr
