"""``python -m elt run --allow-partial`` with one source down, on a copy of the clean reference run.

Without the flag the flow fails at extract and publishes nothing (the default stays). With it, the flow
builds everything the failed source does not feed, publishes those marts - identical to the clean run's,
since their sources did not change - carries the marts built from the failed source from the current
version, marks the manifest partial and exits 4. Once the source is back a plain run publishes a
complete version equal to the clean run.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable

import duckdb
import pytest

from publish import versions
from publish.verify import verify_version
from tests.pytest.support.fingerprints import assert_matches_clean
from tests.pytest.support.ports import closed_port
from tests.pytest.support.workspace import Workspace, flow, run
from tests.pytest.support.world import Reference

pytestmark = pytest.mark.slow  # three flows, two of them with a dbt build


def test_allow_partial_publishes_what_a_failed_source_does_not_feed(
    workspace: Callable[..., Workspace], reference: Reference, fleet_clean
) -> None:
    ws = workspace("partial")
    for folder in ("warehouse", "exports"):  # the loaders' state comes back from the warehouse
        shutil.copytree(
            reference.workspace.root / folder, ws.root / folder, symlinks=True, dirs_exist_ok=True
        )
    before = ws.current_version()
    assert before is not None
    kept = versions.list_versions(ws.exports)  # the reference may hold more (test_atomic_reader publishes)
    clean = versions.read_manifest(ws.exports / before)
    up = dict(ws.env)
    ws.env["SOURCES__EVENTS__BASE_URL"] = f"http://127.0.0.1:{closed_port()}"  # events is down

    refused = flow(ws)
    assert refused.returncode == 1, refused.describe()
    assert "elt run FAILED at step 'extract'" in refused.output and "events: FAILED" in refused.output
    assert ws.current_version() == before and versions.list_versions(ws.exports) == kept

    out = run(ws, ["-m", "elt", "run", "--no-services", "--allow-partial"])
    assert out.returncode == 4, out.describe()
    assert "elt run PARTIAL in " in out.output and "PARTIAL: source(s) events failed" in out.output
    current = ws.current_version()
    assert current is not None and current != before
    version_dir = ws.exports / current
    manifest = versions.read_manifest(version_dir)
    part = manifest["partial"]
    assert (
        list(part["failed_sources"]) == ["events"]
        and "connection refused" in part["failed_sources"]["events"]
    )
    assert part["carried_from"] == clean["version"] and part["not_published"] == []
    stale, fresh = set(part["stale_marts"]), set(manifest["marts"]) - set(part["stale_marts"])
    assert "fct_funnel_daily" in stale and {"fct_orders", "fct_payments"} <= fresh, part
    assert set(manifest["marts"]) == set(clean["marts"])  # every mart is still there
    for name in stale:  # carried: the clean build's files, linked, marked with the build they come from
        entry = manifest["marts"][name]
        assert entry["stale"]["built_in_version"] == clean["version"]
        assert entry["content_checksum"] == clean["marts"][name]["content_checksum"]
        for f in entry["files"]:
            assert (version_dir / f["path"]).stat().st_ino == (ws.exports / before / f["path"]).stat().st_ino
    for name in fresh:  # rebuilt without events: the same data as the clean run
        assert "stale" not in manifest["marts"][name]
        assert manifest["marts"][name]["content_checksum"] == clean["marts"][name]["content_checksum"], name
    assert verify_version(version_dir) == []

    results = json.loads((ws.root / "target" / "run_results.json").read_text())["results"]
    built = {r["unique_id"] for r in results}
    assert not any("stg_events" in uid or "fct_funnel_daily" in uid for uid in built), "events' lineage ran"
    assert "model.shop.fct_orders" in built
    con = duckdb.connect(str(ws.warehouse), read_only=True)
    try:
        statuses = dict(
            con.execute(
                "select step, status from ops.runs where command like '%--allow-partial%' and step in"
                " ('run', 'extract', 'export')"
            ).fetchall()
        )
    finally:
        con.close()
    assert statuses == {"run": "partial", "extract": "failed", "export": "success"}, statuses

    ws.env.clear()
    ws.env.update(up)  # events is back
    again = flow(ws)
    assert again.returncode == 0, again.describe()
    assert "partial" not in versions.read_manifest(ws.exports / ws.current_version())
    assert_matches_clean(reference.prints, ws, "events was down for a partial run, then back")
