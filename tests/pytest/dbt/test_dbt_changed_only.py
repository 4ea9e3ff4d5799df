"""The changed-only build (elt/build_plan.py) on the real project: after a change in one service,
``elt run`` builds only what is downstream of that service's sources (plus the consistent cut's own
models, which move with every extract's load horizons), runs their tests and source tests, leaves every
other relation as the last build wrote it, and publishes a complete version with the untouched marts
carried. A changed model definition rebuilds its own descendants. Asserted on dbt's run_results.json.

The world is the clean run's whole workspace, so the first run here is the next run of that workspace
(tests/pytest/support/dbt_world.py: ``FlowWorld``). Whether what a changed-only build leaves equals a full
refresh is tests/pytest/dbt/test_dbt_incremental.py's (slow) property test.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from publish import versions
from publish.verify import verify_version
from tests.pytest.support.dbt_world import FlowWorld, descendants
from tests.pytest.support.paths import REPO

# The consistent cut's own models (docs/consistency.md): every extract appends load horizons, which they
# read; int_order_settlement, which declares the rows the cut can still change (meta.rebuild_while),
# is where a moved cut stops when no order waits for it.
CUT_MODELS = {"stg_ops__source_horizons", "int_settled_horizon"}
BUILT = ("model", "seed", "snapshot")


def _built(results: dict[str, Any]) -> set[str]:
    ids = [r["unique_id"] for r in results["results"]]
    return {u.split(".")[-1] for u in ids if u.split(".")[0] in BUILT}


def _models_downstream(manifest: dict[str, Any], schema: str) -> set[str]:
    sources = {u for u, s in manifest["sources"].items() if s["schema"] == schema}
    nodes = descendants(manifest, sources)
    return {manifest["nodes"][u]["name"] for u in nodes if u.split(".")[0] in BUILT}


def _dbt_line(output: str) -> str:
    return next(line for line in output.splitlines() if re.match(r"\s+dbt build\s", line))


def _waiting_for_the_cut(world: FlowWorld) -> int:
    with world.con() as con:
        query = "select count(*) from intermediate.int_order_settlement where {}"
        return con.execute(query.format("has_references and not is_settled")).fetchone()[0]


def test_a_change_in_one_service_rebuilds_only_its_descendants(flow_world: FlowWorld) -> None:
    world = flow_world
    # the shared run's data is historic: no order waits for the cut, so nothing past it may build
    assert _waiting_for_the_cut(world) == 0
    before = world.ws.current_version()
    kinds = world.change("browse_session", 20)["kinds"]  # new events: the events service only
    assert kinds == {"browse_session": 20}, kinds

    out = world.run()
    assert out.returncode == 0, out.describe()
    results, manifest = world.run_results(), world.manifest()
    assert all(r["status"] in ("success", "pass") for r in results["results"]), results["results"]

    events = _models_downstream(manifest, "raw_events")
    assert {"stg_events__events", "int_sessions", "fct_funnel_daily", "rt_events_per_minute"} <= events
    built = _built(results)
    assert built == events | CUT_MODELS, sorted(built ^ (events | CUT_MODELS))
    # nothing of the other services: not the cut's marts, not the customers' snapshot
    others = {"fct_orders", "fct_payments", "dim_customers", "snap_customers", "int_order_settlement"}
    assert not built & others

    # their tests and the source tests of raw_events ran; no test of a node left alone did
    selected = {u for u, n in manifest["nodes"].items() if n["name"] in built}
    selected |= {u for u, s in manifest["sources"].items() if s["schema"] in ("raw_events", "ops")}
    parents = manifest["parent_map"]
    ran_tests = {r["unique_id"] for r in results["results"] if r["unique_id"].startswith("test.")}
    own_tests = {u for u in manifest["nodes"] if u.startswith("test.") and set(parents[u]) <= selected}
    assert own_tests <= ran_tests, sorted(own_tests - ran_tests)
    assert all(set(parents[u]) & selected for u in ran_tests)
    generic = {u: (manifest["nodes"][u].get("test_metadata") or {}).get("name") for u in ran_tests}
    guards = [u for u, name in generic.items() if name == "row_drop_guard"]
    assert guards and {manifest["sources"][parents[u][0]]["schema"] for u in guards} == {"raw_events"}, guards

    # new data alone cannot change a unit test's outcome: none ran (the events lineage has some)
    assert any(manifest["unit_tests"][u]["model"] in built for u in manifest["unit_tests"])
    assert not [r["unique_id"] for r in results["results"] if r["unique_id"].startswith("unit_test.")]

    # the summary says what was built and why
    line = _dbt_line(out.output)
    ran = sum(not r["unique_id"].startswith("operation.") for r in results["results"])
    models = sum(r["unique_id"].startswith("model.") for r in results["results"])
    kinds = [n["resource_type"] for n in manifest["nodes"].values()]
    total = sum(k in ("model", "seed", "snapshot", "test") for k in kinds) + len(manifest["unit_tests"])
    assert ran < total and f"built {ran} of {total} nodes ({models} models" in line, line
    assert "downstream of raw_events" in line and "int_order_settlement left as built" in line, line
    assert "unit tests left out" in line, line

    # a complete, verified version; the marts of other services carried from the last one
    current = world.ws.current_version()
    assert current != before
    folder = world.ws.exports / current
    manifest_out = versions.read_manifest(folder)
    carried = {name for name, m in manifest_out["marts"].items() if m.get("carried_over")}
    assert {"fct_orders", "fct_payments", "dim_customers", "dim_products"} <= carried, carried
    assert verify_version(folder) == []


@pytest.mark.slow
def test_a_changed_model_definition_rebuilds_its_descendants(flow_world: FlowWorld, tmp_path: Path) -> None:
    """An edited model (in a copy of the project, ``DBT_PROJECT_DIR``) rebuilds itself and what is
    downstream of it, found by dbt's ``state:modified+`` against the recorded build's manifest."""
    world = flow_world
    project = tmp_path / "project"
    project.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy2(REPO / name, project / name)
    for folder in ("models", "macros", "seeds", "snapshots", "tests/dbt"):
        shutil.copytree(REPO / folder, project / folder)
    model = project / "models/marts/core/dim_products.sql"
    model.write_text(model.read_text() + "\n-- an edit the next build must pick up\n")
    world.ws.env["DBT_PROJECT_DIR"] = str(project)
    try:
        out = world.run()
    finally:
        del world.ws.env["DBT_PROJECT_DIR"]
    assert out.returncode == 0, out.describe()
    manifest = world.manifest()
    uid = next(u for u, n in manifest["nodes"].items() if n["name"] == "dim_products")
    below = descendants(manifest, {uid})
    downstream = {manifest["nodes"][u]["name"] for u in below if u.split(".")[0] in BUILT}
    assert "fct_daily_revenue" in downstream
    built = _built(world.run_results())
    assert built == downstream | CUT_MODELS, sorted(built ^ (downstream | CUT_MODELS))
    line = _dbt_line(out.output)
    assert "state:modified+" in line and "dim_products.sql" in out.output, line
