"""The changed-only plan (elt/build_plan.py) and what the build check hands it (elt/build_state.py), in
process and without dbt: a small manifest shaped like the project's (two services, the load horizons,
a consistent cut that declares ``meta.rebuild_while``, a published mart on each side) and a real DuckDB
file for the horizons. The real project's builds are checked by tests/pytest/dbt/test_dbt_changed_only.py."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from elt import build_plan, build_state
from publish import versions
from tests.pytest.elt.helpers import EltPaths, fill_marts

REPO = Path(__file__).resolve().parents[3]
ENV = {"SHOP_SETTLE_SECONDS": "30"}


def _node(
    name: str, kind: str = "model", *, sql: str = "", meta: dict | None = None, tags: list | None = None
) -> dict:
    return {
        "resource_type": kind,
        "name": name,
        "raw_code": sql,
        "config": {"enabled": True, "meta": meta or {}, "tags": tags or []},
        "unrendered_config": {},
        "depends_on": {"macros": [], "nodes": []},
    }


def _source(source: str, table: str, schema: str) -> dict:
    return {"resource_type": "source", "source_name": source, "name": table, "schema": schema}


def manifest() -> dict:
    """events → stg → fct_funnel (published); orders → stg → settlement (rebuild_while) → fct_orders
    (published); horizons → stg → cut → settlement; the cut reads a var by a computed name."""
    nodes = {
        "model.p.stg_events": _node("stg_events"),
        "model.p.fct_funnel": _node("fct_funnel", tags=["publish"]),
        "model.p.stg_orders": _node("stg_orders", sql="select {{ var('realtime_lookback') }}"),
        "model.p.stg_horizons": _node("stg_horizons"),
        "model.p.cut": _node("cut", sql="{% for n in ['settle'] %}{{ var(n) }}{% endfor %}"),
        "model.p.settlement": _node("settlement", meta={build_state.PENDING_META_KEY: "not is_settled"}),
        "model.p.fct_orders": _node("fct_orders", tags=["publish"]),
        "snapshot.p.snap_orders": _node("snap_orders", "snapshot"),
        "test.p.not_null_fct_orders_id.1": _node("not_null_fct_orders_id", "test"),
        "test.p.unique_stg_events_id.2": _node("unique_stg_events_id", "test"),
    }
    sources = {
        "source.p.events.events": _source("events", "events", "raw_events"),
        "source.p.orders.orders": _source("orders", "orders", "raw_orders"),
        "source.p.orders_deferred.orders__deferred": _source(
            "orders_deferred", "orders__deferred", "raw_orders"
        ),
        "source.p.ops.source_horizons": _source("ops", "source_horizons", "ops"),
    }
    edges = {
        "source.p.events.events": ["model.p.stg_events"],
        "model.p.stg_events": ["model.p.fct_funnel", "test.p.unique_stg_events_id.2"],
        "source.p.orders.orders": ["model.p.stg_orders"],
        "source.p.orders_deferred.orders__deferred": ["model.p.settlement"],
        "model.p.stg_orders": ["model.p.settlement", "snapshot.p.snap_orders"],
        "source.p.ops.source_horizons": ["model.p.stg_horizons"],
        "model.p.stg_horizons": ["model.p.cut"],
        "model.p.cut": ["model.p.settlement"],
        "model.p.settlement": ["model.p.fct_orders"],
        "model.p.fct_orders": ["test.p.not_null_fct_orders_id.1"],
    }
    return {"nodes": nodes, "sources": sources, "macros": {}, "unit_tests": {}, "child_map": edges}


def _plan(**changes: object) -> build_plan.Plan:
    return build_plan.plan_on(build_plan.Graph(manifest()), build_state.Changes(**changes), Path("/state"))


def test_a_load_builds_its_sources_descendants_and_the_cut_but_not_past_a_settled_cut() -> None:
    plan = _plan(loads=["raw_events"], horizons=["events", "orders"])
    assert not plan.full
    assert plan.select == ["source:events+", "source:ops.source_horizons", "cut", "stg_horizons"]
    # no --state without state:modified; new data alone cannot change a unit test's outcome
    assert plan.dbt_args() == ["--select", *plan.select, "--exclude-resource-type", "unit_test"]
    assert "downstream of raw_events" in plan.why and "settlement left as built" in plan.why
    assert "unit tests left out" in plan.why

    # every source reading the schema (a service's data and what its loader deferred)
    assert _plan(loads=["raw_orders"]).select == ["source:orders+", "source:orders_deferred+"]
    # rows waiting for the cut: the declaring model and everything downstream of it build
    plan = _plan(loads=["raw_events"], horizons=["orders"], pending={"settlement": 3})
    assert "settlement+" in plan.select and "3 row(s) can change with time" in plan.why
    assert _plan(pending={"settlement": -1}).select == ["settlement+"]  # unknown counts as pending


def test_definitions_and_named_inputs_select_their_users() -> None:
    plan = _plan(files=["models/x.sql"])
    assert plan.dbt_args() == ["--select", "state:modified+", "--state", "/state"]  # unit tests run
    # with new data too, a changed definition or var still runs the selected nodes' unit tests
    for changed in ({"files": ["macros/m.sql"]}, {"names": ["var:settle"]}):
        plan = _plan(loads=["raw_events"], **changed)
        assert plan.unit_tests and "unit_test" not in plan.dbt_args(), plan.dbt_args()
    # a var named in SQL; the cut computes its var names, so any var change reaches it
    assert _plan(names=["var:realtime_lookback"]).select == ["cut+", "stg_orders+"]
    assert _plan(names=["var:settle"]).select == ["cut+"]
    # a name no node reads leaves nothing to narrow: the whole project, never nothing
    assert _plan(names=["env:NOBODY"]).full


def test_whatever_cannot_be_narrowed_builds_everything(elt_env: EltPaths) -> None:
    assert _plan(full=["a new UTC day (2027-01-01)"]).full
    assert build_plan.plan(build_state.Changes(loads=["raw_events"]), ["--full-build"]).full
    # no recorded manifest (state folder empty): everything
    plan = build_plan.plan(build_state.Changes(loads=["raw_events"]))
    assert plan.full and "manifest is missing" in plan.why


def test_moved_horizons_alone_build_only_when_they_reach_a_published_model(elt_env: EltPaths) -> None:
    import json

    build_state.state_dir().mkdir(parents=True)
    saved = build_state.state_dir() / "manifest.json"
    saved.write_text(json.dumps(manifest()))
    moved = build_state.Changes(horizons=["orders"])
    assert not moved.needs_build() and not build_plan.horizons_reach_published(moved)
    published_cut = manifest()
    published_cut["nodes"]["model.p.cut"]["config"]["tags"] = ["publish"]
    saved.write_text(json.dumps(published_cut))
    assert build_plan.horizons_reach_published(moved)
    assert not build_plan.horizons_reach_published(build_state.Changes())


# -- what decide() hands the plan, on a real DuckDB file ---------------------------------------------


def _published(paths: EltPaths, version: str) -> None:
    folder = versions.versions_dir(paths.exports) / version
    folder.mkdir(parents=True)
    (folder / versions.MANIFEST).write_text("{}")
    versions.switch_current(paths.exports, version)


def _horizon(warehouse: Path, service: str, at: datetime) -> None:
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema if not exists ops")
        con.execute("create table if not exists ops.source_horizons (service varchar, cutoff_at timestamptz)")
        con.execute("insert into ops.source_horizons values (?, ?)", [service, at])


@pytest.fixture()
def project_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The dbt project's files in a folder of their own (``DBT_PROJECT_DIR``), free to edit."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy2(REPO / name, root / name)
    for folder in ("models", "macros", "seeds", "snapshots", "tests/dbt"):
        shutil.copytree(REPO / folder, root / folder)
    monkeypatch.setenv("DBT_PROJECT_DIR", str(root))
    return root


def _decide(paths: EltPaths, env: dict[str, str] | None = None) -> build_state.Decision:
    with duckdb.connect(str(paths.warehouse)) as con:
        inputs = build_state.current_inputs(con, env or ENV)
        last = {"invocation_id": "inv-1", "exit_code": 0}
        return build_state.decide(con, inputs, exports=paths.exports, last_build=last)


def test_the_check_names_what_changed_for_the_plan(elt_env: EltPaths, project_copy: Path) -> None:
    fill_marts(elt_env.warehouse)
    _published(elt_env, "v1")
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    _horizon(elt_env.warehouse, "orders", t0)
    with duckdb.connect(str(elt_env.warehouse)) as con:
        build_state.record(build_state.current_inputs(con, ENV), "inv-1", "v1", None)
    assert not _decide(elt_env).build

    # a moved horizon alone is no reason to build; it is part of what a build refreshes
    _horizon(elt_env.warehouse, "orders", t0 + timedelta(minutes=5))
    decision = _decide(elt_env)
    assert not decision.build and decision.changes.horizons == ["orders"]

    # a node file and a var from the environment: named, narrowable
    model = project_copy / "models/marts/core/dim_products.sql"
    model.write_text(model.read_text() + "\n-- edited\n")
    decision = _decide(elt_env, {"SHOP_SETTLE_SECONDS": "5"})
    assert decision.build and not decision.changes.full
    assert decision.changes.files == ["models/marts/core/dim_products.sql"]
    assert decision.changes.names == ["var:settle_seconds"]
    assert "dim_products.sql" in decision.reasons[0] and "settle_seconds" in decision.reasons[0]

    # what no one node owns (profiles, dbt_project.yml outside vars): everything
    profile = project_copy / "profiles.yml"
    profile.write_text(profile.read_text().replace("threads: 2", "threads: 1", 1))
    decision = _decide(elt_env)
    assert decision.changes.full and "outside any one node" in decision.changes.full[0]


def test_a_horizon_or_load_that_went_back_builds_everything(elt_env: EltPaths, project_copy: Path) -> None:
    fill_marts(elt_env.warehouse)
    _published(elt_env, "v1")
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    _horizon(elt_env.warehouse, "orders", t0)
    with duckdb.connect(str(elt_env.warehouse)) as con:
        build_state.record(build_state.current_inputs(con, ENV), "inv-1", "v1", None)
        con.execute("delete from ops.source_horizons")
    _horizon(elt_env.warehouse, "orders", t0 - timedelta(minutes=5))
    decision = _decide(elt_env)
    assert decision.build and decision.changes.full == ["the load horizon of orders went back"]

    with duckdb.connect(str(elt_env.warehouse)) as con:
        con.execute("delete from ops.source_horizons")
        (load_id,) = con.execute("select max(load_id) from raw_orders._dlt_loads").fetchone()
        con.execute("delete from raw_orders._dlt_loads")
        con.execute("insert into raw_orders._dlt_loads values ('1000000000.1', 'orders', 0, now())")
    changes = _decide(elt_env).changes
    assert "raw_orders's newest load went back" in changes.full
    assert "the load horizon of orders went back" in changes.full  # no horizon at all now
    assert load_id > "1000000000.1"
