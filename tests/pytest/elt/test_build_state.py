"""The no-change check (elt/build_state.py) on a real DuckDB file and the real dbt project's files: a run
skips only when nothing a build depends on changed; every kind of change is a reason to build.

In-process and without dbt (a fraction of a second each); the flow's own skip is checked end to end by
tests/pytest/elt/test_flow_e2e.py."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from core import settings
from elt import build_state
from publish import versions
from tests.pytest.elt.helpers import EltPaths, fill_marts
from transform import dbt_runner

REPO = Path(__file__).resolve().parents[3]
ENV = {"SHOP_SETTLE_SECONDS": "30", "SHOP_WAREHOUSE": "/w/shop.duckdb", "UNRELATED": "1"}


@pytest.fixture()
def project_copy(tmp_path: Path) -> Path:
    """The dbt project's files (not its data) in a folder of their own, free to edit."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("dbt_project.yml", "profiles.yml"):
        shutil.copy2(REPO / name, root / name)
    for folder in ("models", "macros", "seeds", "snapshots", "tests/dbt"):
        shutil.copytree(REPO / folder, root / folder)
    return root


def test_the_digest_follows_every_definition_and_the_env_the_project_reads(project_copy: Path) -> None:
    base = build_state.definitions_digest(project_copy, ENV)
    assert build_state.definitions_digest(project_copy, ENV) == base  # stable
    assert build_state.definitions_digest(project_copy, {**ENV, "UNRELATED": "2"}) == base

    changed = {}
    for rel in (
        "models/marts/core/fct_orders.sql",
        "macros/money.sql",
        "seeds/country_regions.csv",
        "snapshots/snap_customers.sql",
        "tests/dbt/assert_paid_orders_fully_paid.sql",
        "models/intermediate/_intermediate__models.yml",
        "dbt_project.yml",
    ):
        path = project_copy / rel
        original = path.read_bytes()
        # dbt_project.yml is compared as parsed YAML (a var in it is traced to its users): edit a value
        edited = original.replace(b"session_timeout_minutes: 30", b"session_timeout_minutes: 31")
        path.write_bytes(edited if rel == "dbt_project.yml" else original + b"\n")
        changed[rel] = build_state.definitions_digest(project_copy, ENV)
        path.write_bytes(original)
    assert all(d != base for d in changed.values()), changed
    assert build_state.definitions_digest(project_copy, ENV) == base

    (project_copy / "models" / "marts" / "core" / "fct_new.sql").write_text("select 1 as x\n")
    assert build_state.definitions_digest(project_copy, ENV) != base
    (project_copy / "models" / "marts" / "core" / "fct_new.sql").unlink()
    # a var set from the environment (dbt_project.yml: settle_seconds), the source names; not where the
    # warehouse is (its loads and the recorded build say which data it holds)
    assert build_state.definitions_digest(project_copy, {**ENV, "SHOP_SETTLE_SECONDS": "5"}) != base
    assert build_state.definitions_digest(project_copy, {**ENV, "SHOP_SOURCE_NAMES": "orders"}) != base
    assert build_state.definitions_digest(project_copy, {**ENV, "SHOP_WAREHOUSE": "/x.duckdb"}) == base
    # a secret enters the digest, never the state file
    secret = {**ENV, "DBT_ENV_SECRET_PII_KEY": "k1-secret-value"}
    assert build_state.definitions_digest(project_copy, secret) != build_state.definitions_digest(
        project_copy, {**secret, "DBT_ENV_SECRET_PII_KEY": "k2-secret-value"}
    )


def _manifest(target: Path, condition: str) -> Path:
    """A dbt manifest with one model declaring ``meta.rebuild_while``."""
    node = {
        "resource_type": "model",
        "name": "fct_orders",
        "database": "shop",
        "schema": "main_marts",
        "alias": "fct_orders",
        "config": {"enabled": True, "meta": {build_state.PENDING_META_KEY: condition}},
    }
    path = target / "manifest.json"
    path.write_text(json.dumps({"nodes": {"model.shop.fct_orders": node}}))
    return path


def _published(paths: EltPaths, version: str) -> None:
    folder = versions.versions_dir(paths.exports) / version
    folder.mkdir(parents=True)
    (folder / versions.MANIFEST).write_text("{}")
    versions.switch_current(paths.exports, version)


def _last_build(invocation: str, exit_code: int = 0) -> dict[str, object]:
    return {"invocation_id": invocation, "exit_code": exit_code}


def _decide(paths: EltPaths, now: datetime | None = None, last: dict[str, object] | None = None):
    with duckdb.connect(str(paths.warehouse)) as con:
        inputs = build_state.current_inputs(con, ENV, now)
        return inputs, build_state.decide(
            con, inputs, exports=paths.exports, last_build=last or _last_build("inv-1")
        )


def test_a_run_skips_only_while_nothing_changed(elt_env: EltPaths) -> None:
    fill_marts(elt_env.warehouse)
    _published(elt_env, "v1")
    inputs, decision = _decide(elt_env)
    assert decision.build and decision.reasons == ["no successful build recorded"]

    build_state.record(inputs, "inv-1", "v1", _manifest(elt_env.target, "generation < 0"))
    _, decision = _decide(elt_env)
    assert not decision.build, decision.reasons
    assert decision.describe() == "nothing new since version v1: no new load, no definition change"
    assert "k1-secret" not in build_state.state_file().read_text()

    # a load that is not committed (status 1) is not new data
    with duckdb.connect(str(elt_env.warehouse)) as con:
        con.execute("insert into raw_orders._dlt_loads values ('1800000000.1', 'orders', 1, now())")
    assert not _decide(elt_env)[1].build

    # every kind of change is a reason, named
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert _decide(elt_env, now=tomorrow)[1].reasons == [f"a new UTC day ({tomorrow.date().isoformat()})"]
    assert _decide(elt_env, last=_last_build("inv-2"))[1].reasons == ["dbt ran since the recorded build"]
    assert _decide(elt_env, last=_last_build("inv-1", 1))[1].reasons == ["the last dbt build did not succeed"]
    _published(elt_env, "v2")
    assert _decide(elt_env)[1].reasons == ["exports/current is not the recorded version v1"]
    versions.switch_current(elt_env.exports, "v1")  # a rollback to it: up to date again
    assert not _decide(elt_env)[1].build

    with duckdb.connect(str(elt_env.warehouse)) as con:
        con.execute("insert into raw_orders._dlt_loads values ('1800000000.2', 'orders', 0, now())")
    assert _decide(elt_env)[1].reasons == ["new load in raw_orders"]


def test_rows_that_change_with_time_alone_keep_building(elt_env: EltPaths) -> None:
    fill_marts(elt_env.warehouse)  # fct_orders: 500 rows of generation 0
    _published(elt_env, "v1")
    inputs, _ = _decide(elt_env)
    build_state.record(inputs, "inv-1", "v1", _manifest(elt_env.target, "generation = 0 and order_id < 7"))
    assert _decide(elt_env)[1].reasons == ["7 row(s) of fct_orders can change with time (rebuild_while)"]

    # a relation the condition cannot read counts as pending (unknown), never as settled
    with duckdb.connect(str(elt_env.warehouse)) as con:
        con.execute("drop table main_marts.fct_orders")
    unknown = "unknown row(s) of fct_orders can change with time (rebuild_while)"
    assert _decide(elt_env)[1].reasons == [unknown]


def test_the_real_project_declares_its_time_dependent_model(tmp_path: Path) -> None:
    """int_order_settlement's orders waiting for the consistent cut (docs/consistency.md) settle with
    time alone: the project must declare it, or an unchanged run would skip them forever."""
    import yaml

    doc = yaml.safe_load((REPO / "models/intermediate/_intermediate__models.yml").read_text())
    model = next(m for m in doc["models"] if m["name"] == "int_order_settlement")
    assert model["config"]["meta"][build_state.PENDING_META_KEY] == "has_references and not is_settled"


def test_unreadable_state_means_build_and_the_force_switch(elt_env: EltPaths) -> None:
    build_state.state_file().parent.mkdir(parents=True, exist_ok=True)
    build_state.state_file().write_text("{not json")
    assert build_state.load() is None
    assert build_state.forced({build_state.FORCE_ENV: "1"})
    assert not build_state.forced({build_state.FORCE_ENV: "0"}) and not build_state.forced({})
    assert settings.run_dir() == elt_env.run and dbt_runner.last_build() is None
