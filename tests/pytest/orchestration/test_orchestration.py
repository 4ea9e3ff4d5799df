"""The orchestrator (orchestration/): the code location loads, its graph is the flow from raw table to
export, and a Dagster run of everything does what ``make elt`` does.

Cheap by sharing: the cases read the shared clean run (tests/pytest/support/world.py, a ``python -m elt run``
on the source fleet) for its dbt manifest and its fingerprint, and run against the same fleet, so this
module belongs to that world's xdist group (tests/pytest/conftest.py). The expensive part is one
in-process run of the ``batch`` job on an empty warehouse (loads, a whole ``dbt build``, the publish);
the selection and failure cases then build only a handful of models on top of it.

Runs are in-process (``execute_in_process``) on an ephemeral instance; ``dagster dev`` is never driven
(it ignored SIGTERM for over 30 s here). The environment of the workspace is this process's while a
run executes, because the loaders, dbt and the publisher are real child processes that inherit it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from orchestration import dbt_assets, raw_assets
from orchestration.definitions import BATCH_JOB, build_definitions
from orchestration.export_asset import EXPORT_KEY
from orchestration.stream import stream_keeper
from services.launcher import Fleet
from tests.pytest.support.fingerprints import assert_matches_clean
from tests.pytest.support.paths import REPO
from tests.pytest.support.workspace import Workspace, make_workspace
from tests.pytest.support.world import PII_KEY, Reference

ENV_PREFIXES = ("SHOP_", "DBT_", "SOURCES__", "RUNTIME__", "DAGSTER_")
# a mart with a short lineage (one source, one seed): the selection and failure cases build only this
SMALL_MART = dg.AssetKey(["marts", "dim_products"])
BROKEN_TEST = "non_negative_money_stg_catalog__products_list_price"


def reference_manifest(reference: Reference) -> Path:
    return reference.workspace.root / "target" / "manifest.json"


@contextlib.contextmanager
def workspace_env(ws: Workspace) -> Iterator[None]:
    """This process's project variables replaced by the workspace's for the ``with`` block."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(ENV_PREFIXES) and name not in ws.env:
                mp.delenv(name)
        for name, value in ws.env.items():
            if name.startswith(ENV_PREFIXES):
                mp.setenv(name, value)
        yield


def execute(
    defs: dg.Definitions, ws: Workspace, keys: list[dg.AssetKey] | None = None
) -> dg.ExecuteInProcessResult:
    """Run the batch job (or the ``keys`` of it) in this process against ``ws``; the services are the
    test fleet's (``--no-services``)."""
    job = defs.resolve_job_def(BATCH_JOB)
    with workspace_env(ws), dg.DagsterInstance.ephemeral() as instance:
        return job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            asset_selection=keys,
        )


def events_of(result: dg.ExecuteInProcessResult, kind: dg.DagsterEventType) -> list[dg.DagsterEvent]:
    return [e for e in result.all_events if e.event_type == kind]


def materialized(result: dg.ExecuteInProcessResult) -> set[dg.AssetKey]:
    return {e.asset_key for e in events_of(result, dg.DagsterEventType.ASSET_MATERIALIZATION)}


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """Each evaluated check, ``asset/check`` → passed."""
    return {
        e.event_specific_data.asset_check_key.to_user_string(): e.event_specific_data.passed
        for e in events_of(result, dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    }


def dbt_tests(manifest: dict) -> set[str]:
    return {n["name"] for n in manifest["nodes"].values() if n["resource_type"] == "test"}


@pytest.fixture(scope="module")
def defs(reference: Reference) -> dg.Definitions:
    """The code location as Dagster loads it, on the shared build's manifest and the suite's sources."""
    return build_definitions(reference_manifest(reference), manage_services=False)


@dataclass
class BatchRun:
    ws: Workspace
    result: dg.ExecuteInProcessResult


@pytest.fixture(scope="module")
def batch_run(
    defs: dg.Definitions, reference: Reference, source_fleet: Fleet, tmp_path_factory: pytest.TempPathFactory
) -> BatchRun:
    """The batch job, in-process, on an empty warehouse against the shared fleet's data."""
    ws = make_workspace(
        tmp_path_factory.mktemp("dagster-batch"),
        source_fleet.env(),
        PII_KEY,
        seed_target=reference.workspace.root / "target",
    )
    return BatchRun(ws, execute(defs, ws))


def test_dagster_definitions_validate(reference: Reference, tmp_path: Path) -> None:
    """``dagster definitions validate`` from the repo root finds the code location (pyproject.toml's
    ``[tool.dagster]``) and loads it; the manifest is the shared build's, fresh, so nothing is parsed."""
    target = tmp_path / "target"
    (target / "dagster").mkdir(parents=True)
    shutil.copy(reference_manifest(reference), target / "dagster" / "manifest.json")  # a new mtime: fresh
    (tmp_path / "home").mkdir()
    env = {**os.environ, "DBT_TARGET_PATH": str(target), "DAGSTER_HOME": str(tmp_path / "home")}
    exe = Path(sys.executable).with_name("dagster")
    proc = subprocess.run(
        [str(exe), "definitions", "validate"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "All code locations passed validation" in proc.stdout + proc.stderr
    assert not (target / "dagster" / "perf_info.json").exists(), "a fresh manifest must not be re-parsed"


def test_graph_is_the_flow_from_raw_table_to_export(defs: dg.Definitions, reference: Reference) -> None:
    """Every raw table the loaders wrote, every dbt model, seed and snapshot and the export are assets;
    every dbt source resolves to a loader's asset (ops.source_horizons excepted); every dbt test is a
    check; the export's upstream reaches raw tables of every source through staging and marts."""
    graph = defs.resolve_asset_graph()
    keys = graph.get_all_asset_keys()
    manifest = json.loads(reference_manifest(reference).read_text())
    with duckdb.connect(str(reference.workspace.warehouse), read_only=True) as con:
        written = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema like 'raw\\_%' escape '\\' "
            "and table_schema not like '%\\_staging' escape '\\' "
            "and table_name not in ('_dlt_version', '_dlt_pipeline_state')"
        ).fetchall()
    assert written, "the shared build wrote no raw tables"
    missing = sorted(f"{s}.{t}" for s, t in written if dg.AssetKey([s, t]) not in keys)
    assert not missing, f"raw tables the loaders write but the graph lacks: {missing}"

    translator = dbt_assets.translator()
    nodes = [n for n in manifest["nodes"].values() if n["resource_type"] in ("model", "seed", "snapshot")]
    assert len(nodes) > 30
    assert not [n["unique_id"] for n in nodes if translator.get_asset_key(n) not in keys]
    external = {dbt_assets.source_key(manifest, uid) for uid in manifest["sources"]} - {
        k for k in keys if graph.get(k).is_materializable
    }
    assert external == {dg.AssetKey(["ops", "source_horizons"])}, external

    checks = {(c.asset_key, c.name) for c in graph.asset_check_keys}
    unattached = dbt_tests(manifest) - {name for _, name in checks}
    assert not unattached, f"dbt tests that are no asset check: {sorted(unattached)}"

    upstream = dg.AssetSelection.assets(EXPORT_KEY).upstream().resolve(graph)
    published = set(dbt_assets.published_keys(manifest))
    assert published and published <= upstream
    sources = {f"raw_{name}" for name in raw_assets_names(defs)}
    assert {k.path[0] for k in upstream if k.path[0].startswith("raw_")} == sources
    for mart in published:  # each published mart reaches a raw table through a staging model
        lineage = dg.AssetSelection.assets(mart).upstream().resolve(graph)
        assert any(k.path[0] == "staging" for k in lineage), mart
        assert any(k.path[0].startswith("raw_") for k in lineage), mart


def raw_assets_names(defs: dg.Definitions) -> list[str]:
    return [job.name.removeprefix("load_") for job in defs.jobs if job.name.startswith("load_")]


def test_a_source_file_is_assets_and_a_job_without_dagster_code(
    reference: Reference, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file added to the sources folder (here a user's ``tickets.yml``) becomes raw assets (endpoint,
    child list, deferred records, load log) and a ``load_tickets`` job; the shop's sources stay."""
    folder = tmp_path / "sources"
    shutil.copytree(os.environ["SHOP_SOURCES_DIR"], folder)
    (folder / "tickets.yml").write_text(
        "auth: none\n"
        "endpoints:\n"
        "  - name: tickets\n"
        "    path: /api/tickets\n"
        "    primary_key: id\n"
        "    records: $\n"
        "    paginator: {kind: page_number, page_param: page, limit_param: per_page}\n"
        "    incremental: {mode: updated, cursor: updated_at}\n"
        "    fields: {id: int, title: str, updated_at: ts, tags: [{tag_id: int, label: str}]}\n"
        "    children: {tags: tag_id}\n"
    )
    monkeypatch.setenv("SHOP_SOURCES_DIR", str(folder))
    defs = build_definitions(reference_manifest(reference))
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    tables = {k.path[1] for k in keys if k.path[0] == "raw_tickets"}
    assert tables == {"tickets", "tickets__tags", "tickets__deferred", "_dlt_loads"}
    assert "load_tickets" in {j.name for j in defs.jobs}
    assert dg.AssetKey(["raw_orders", "orders"]) in keys


def test_everything_equals_make_elt(batch_run: BatchRun, reference: Reference) -> None:
    """The batch job on an empty warehouse: the same raw tables, marts and published Parquet as the
    clean ``make elt`` (counts, money totals, key and content checksums); every dbt test ran as a check
    and passed; the export carries the manifest's version and row counts; the metadata links ops rows."""
    result, ws = batch_run.result, batch_run.ws
    failures = [e.message for e in events_of(result, dg.DagsterEventType.STEP_FAILURE)]
    assert result.success, failures
    assert_matches_clean(reference.prints, ws, "dagster batch job")

    manifest = json.loads((ws.root / "target" / "manifest.json").read_text())
    checks = check_results(result)
    assert len(checks) == len(dbt_tests(manifest))
    assert {name.split(":")[-1] for name in checks} == dbt_tests(manifest)
    assert all(checks.values()), sorted(k for k, ok in checks.items() if not ok)

    export = result.asset_materializations_for_node("exports__parquet")
    assert len(export) == 1
    meta = export[0].metadata
    current = ws.current_version()
    assert current and current.endswith(meta["version"].value)
    published = json.loads((ws.exports / "current" / "manifest.json").read_text())
    assert meta["rows_per_mart"].value == {n: m["rows"] for n, m in published["marts"].items()}

    loaded = {m.asset_key: m.metadata for m in result.asset_materializations_for_node("extract_orders")}
    orders = loaded[dg.AssetKey(["raw_orders", "orders"])]
    assert orders["rows_loaded"].value == orders["dagster/row_count"].value > 0
    with duckdb.connect(str(ws.warehouse), read_only=True) as con:
        ops = con.execute(
            "select step, status, command from ops.runs where run_id in (?, ?)",
            [orders["ops_run_id"].value, meta["ops_run_id"].value],
        ).fetchall()
    assert sorted((s, st) for s, st, _ in ops) == [("export", "success"), ("extract", "success")]
    assert all(result.run_id[:8] in command for *_, command in ops)


def test_a_publish_with_nothing_new_keeps_the_current_version(
    batch_run: BatchRun, defs: dg.Definitions
) -> None:
    """The export asset again after the batch job (the last build was whole, nothing changed since): it
    succeeds, makes no new version, and says so; ``rewrite_all`` writes a new version of equal content."""
    ws = batch_run.ws
    before = ws.current_version()
    again = execute(defs, ws, [EXPORT_KEY])
    assert again.success, [e.message for e in events_of(again, dg.DagsterEventType.STEP_FAILURE)]
    (mat,) = again.asset_materializations_for_node("exports__parquet")
    assert mat.metadata["unchanged"].value is True
    assert mat.metadata["bytes_written"].value == 0
    assert ws.current_version() == before and before.endswith(mat.metadata["version"].value)

    job = defs.resolve_job_def(BATCH_JOB)
    with workspace_env(ws), dg.DagsterInstance.ephemeral() as instance:
        rewritten = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            asset_selection=[EXPORT_KEY],
            run_config={"ops": {"exports__parquet": {"config": {"rewrite_all": True}}}},
        )
    assert rewritten.success, [e.message for e in events_of(rewritten, dg.DagsterEventType.STEP_FAILURE)]
    (mat,) = rewritten.asset_materializations_for_node("exports__parquet")
    assert mat.metadata["unchanged"].value is False and mat.metadata["bytes_written"].value > 0
    assert ws.current_version() != before
    old = json.loads((ws.exports / before / "manifest.json").read_text())["marts"]
    new = json.loads((ws.exports / "current" / "manifest.json").read_text())["marts"]
    assert {n: m["rows"] for n, m in new.items()} == {n: m["rows"] for n, m in old.items()}


def test_one_mart_materialises_with_its_upstream_only(batch_run: BatchRun, defs: dg.Definitions) -> None:
    """Selecting one mart and its upstream (plus the rest of the sources it loads: a source's tables
    commit together) runs exactly those: dbt builds only the mart's upstream models, nothing is
    published; a publish selected on its own afterwards is refused (the last build was a selection).
    The checks of the selected assets run too, dbt source freshness of the loaded tables among them."""
    ws = batch_run.ws
    graph = defs.resolve_asset_graph()
    selection = dg.AssetSelection.assets(SMALL_MART).upstream().required_multi_asset_neighbors()
    wanted = selection.resolve(graph)
    before = ws.current_version()
    result = execute(defs, ws, sorted(wanted, key=str))
    assert result.success, [e.message for e in events_of(result, dg.DagsterEventType.STEP_FAILURE)]
    assert materialized(result) == wanted
    assert EXPORT_KEY not in wanted
    # the loaded tables' dbt source freshness ran with them (dbt's own rule, measured by dbt): fresh
    fresh = {k: ok for k, ok in check_results(result).items() if k.endswith(":dbt_source_freshness")}
    assert {k.split(":")[0] for k in fresh} == {
        "raw_catalog/products",
        "raw_catalog/categories",
        "raw_catalog/_dlt_loads",
    }
    assert all(fresh.values()), fresh

    manifest = json.loads((ws.root / "target" / "manifest.json").read_text())
    parents = manifest["parent_map"]
    upstream: set[str] = set()
    todo = ["model.shop.dim_products"]
    while todo:
        uid = todo.pop()
        if uid not in upstream:
            upstream.add(uid)
            todo += parents.get(uid, [])
    built = json.loads((ws.root / "target" / "run_results.json").read_text())["results"]
    nodes = ("model", "seed", "snapshot")
    ran = {r["unique_id"] for r in built if r["unique_id"].split(".")[0] in nodes}
    assert ran == {u for u in upstream if u.split(".")[0] in nodes}
    assert ws.current_version() == before

    publish = execute(defs, ws, [EXPORT_KEY])
    assert not publish.success
    (failure,) = events_of(publish, dg.DagsterEventType.STEP_FAILURE)
    assert "built only a selection" in failure.event_specific_data.error.message
    assert ws.current_version() == before


def test_a_failing_dbt_test_is_a_failed_check_and_blocks_publish(
    batch_run: BatchRun, defs: dg.Definitions, tmp_path: Path
) -> None:
    """A product with a negative price in raw: its staging test fails as a failed check, the dbt step
    fails, the publish in the same run never runs, and a publish selected on its own is refused; the
    current export version stays. (On a copy of the batch run's workspace.)"""
    ws = copy_workspace(batch_run.ws, tmp_path / "ws")
    with duckdb.connect(str(ws.warehouse)) as con:
        con.execute(
            "update raw_catalog.products set price_minor = -100 "
            "where product_id = (select min(product_id) from raw_catalog.products)"
        )
    before = ws.current_version()
    graph = defs.resolve_asset_graph()
    dbt_keys = [
        k
        for k in dg.AssetSelection.assets(SMALL_MART).upstream().resolve(graph)
        if k.path[0] != "raw_catalog"
    ]
    result = execute(defs, ws, [*dbt_keys, EXPORT_KEY])
    assert not result.success
    checks = check_results(result)
    broken = [k for k, ok in checks.items() if k.endswith(BROKEN_TEST)]
    assert broken and not any(checks[k] for k in broken), checks
    assert sum(ok for ok in checks.values()) > 0, "the other tests of the selection still pass"
    failed_steps = {e.step_key for e in events_of(result, dg.DagsterEventType.STEP_FAILURE)}
    assert failed_steps == {"dbt_build"}
    assert EXPORT_KEY not in materialized(result)
    # selected, but never started: Dagster does not run a step whose upstream step failed
    assert "exports__parquet" not in {e.step_key for e in events_of(result, dg.DagsterEventType.STEP_START)}
    assert ws.current_version() == before

    alone = execute(defs, ws, [EXPORT_KEY])
    assert not alone.success
    (failure,) = events_of(alone, dg.DagsterEventType.STEP_FAILURE)
    assert "from a failed build" in failure.event_specific_data.error.message
    assert ws.current_version() == before


def copy_workspace(ws: Workspace, root: Path) -> Workspace:
    """A copy of a finished workspace (warehouse, exports, run folder, dbt target), paths rewritten."""
    shutil.copytree(ws.root, root, symlinks=True)
    old = str(ws.root)
    env = {k: v.replace(old, str(root)) if old in v else v for k, v in ws.env.items()}
    return Workspace(root, env)


def test_stream_sensor_starts_the_stream_only_when_none_runs(defs: dg.Definitions) -> None:
    """The sensor asks for a stream run when none is active, and skips while one is."""
    job = defs.resolve_job_def("stream")
    sensor = stream_keeper(job)
    with dg.DagsterInstance.ephemeral() as instance:
        first = sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(first, dg.RunRequest)
        run = instance.create_run_for_job(job_def=job, status=dg.DagsterRunStatus.STARTED)
        second = sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(second, dg.SkipReason) and run.run_id[:8] in (second.skip_message or "")
        instance.report_run_canceled(run)
        assert isinstance(sensor(dg.build_sensor_context(instance=instance)), dg.RunRequest)


def test_raw_tables_of_a_source_follow_its_file(reference: Reference) -> None:
    """The raw tables derived for each shop source are the ones dbt declares in that source's schema
    (the loader's naming: endpoint, ``__child``, ``__deferred``, ``_dlt_loads``)."""
    from extract.sources import SERVICES

    manifest = json.loads(reference_manifest(reference).read_text())
    declared: dict[str, set[str]] = {}
    for node in manifest["sources"].values():
        declared.setdefault(node["schema"], set()).add(node.get("identifier") or node["name"])
    for name, service in SERVICES.items():
        assert set(raw_assets.raw_tables(service)) == declared[f"raw_{name}"], name


def test_a_changed_only_build_of_make_elt_is_not_a_partial_build() -> None:
    """The export asset refuses to follow a selection, but ``make elt``'s changed-only build (a selection
    that leaves the warehouse whole, recorded as such by transform/dbt_runner.py) is whole."""
    from orchestration.dbt_assets import partial_build

    selected = {"args": ["build", "--select", "source:shop.raw_events+"], "exit_code": 0}
    assert partial_build(selected)
    assert not partial_build({**selected, "changed_only": True})
    assert not partial_build({"args": ["build"], "exit_code": 0})
