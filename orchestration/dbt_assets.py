"""The dbt project as assets: models, seeds and snapshots from the manifest, dbt tests as asset checks.

Keys: models, seeds and snapshots keep dagster-dbt's default (their name); a dbt source is keyed by its
schema and table (``[raw_orders, orders]``), the keys the loaders' assets carry (raw_assets.py), so the
graph joins raw → staging → marts without a mapping per source. Source tests (the row drop guard)
are checks on those raw tables.

What a build does here is what ``make elt``'s dbt step does (elt/flow.py), from the same public pieces:
under the warehouse lock, after the PII key check (a lost or changed key stops before dbt), with dbt's
environment from ``transform.dbt_runner.dbt_env`` (key, absolute warehouse path), into the project's dbt
target (so ``make export`` and the publish asset read the manifest of the build that ran), logged as
an ``ops.runs`` step, and recorded in ``run/dbt_last_build.json``, which the publish step reads: a
build that failed blocks every later publish until one passes. A failing test (or model) fails the
step after its results are reported, so the failed check is visible and nothing downstream (the
publish asset) runs in that run.

dagster-dbt starts dbt itself (``DbtCliResource``) and reads its environment from ``os.environ``; the
project's variables are set for the moment the child starts and restored at once (``_child_environ``).
A step that ends early (the run terminated, SIGTERM to a headless run) stops dbt first (SIGTERM, then a
grace period: ``core.signals.stop_child``). Like the flow's dbt, the child is tied to its parent by the
kernel (``PR_SET_PDEATHSIG``), so a run worker killed with kill -9 takes dbt with it instead of leaving
it writing without the project lock: dagster-dbt has no hook for the child's set-up, so the resource's
executable is ``orchestration/dbt-tied``, which asks for the signal and then becomes dbt.
"""

import contextlib
import importlib.metadata
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets
from packaging import version

from core import lock, pii_key, settings, signals, steps, warehouse_check
from elt import flow
from orchestration import runlog
from transform import dbt_artifacts, dbt_runner

DBT_SELECT = "fqn:*"


class ShopTranslator(DagsterDbtTranslator):
    """Sources keyed ``[schema, table]``; groups by layer (staging, intermediate, marts, realtime, seeds,
    snapshots)."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            table = dbt_resource_props.get("identifier") or dbt_resource_props["name"]
            return dg.AssetKey([dbt_resource_props["schema"], table])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        kind = dbt_resource_props["resource_type"]
        if kind == "model":
            fqn = dbt_resource_props.get("fqn") or []
            layers = fqn[1:-1]
            return "realtime" if "realtime" in layers else (layers[0] if layers else "models")
        if kind in ("seed", "snapshot"):
            return f"{kind}s"
        return super().get_group_name(dbt_resource_props)


def translator() -> ShopTranslator:
    return ShopTranslator(settings=DagsterDbtTranslatorSettings(enable_source_tests_as_checks=True))


def load_manifest(path: Path) -> dict[str, Any]:
    """The manifest, with every dbt test attached to one asset (``attach_singular_tests``)."""
    return attach_singular_tests(json.loads(path.read_text()))


def attach_singular_tests(manifest: dict[str, Any]) -> dict[str, Any]:
    """Give each singular test that reads several models (the business invariants in ``tests/dbt``) the
    model it checks: the most downstream of its parents (most ancestors; then by name), unless the test
    names one itself (``meta: {dagster: {ref: {name: ...}}}``).

    Why: dagster-dbt turns a test into a check only when it knows which asset the test is about, and
    for a multi-model singular test it needs that ``ref``. Without it such a test would still run in
    ``dbt build`` (and fail it) but show nowhere as a check; deriving it here keeps every dbt test a
    check, a user's new invariant included, with no Dagster meta in the dbt project."""
    parents = manifest.get("parent_map") or {}
    ancestors: dict[str, set[str]] = {}

    def upstream(uid: str) -> set[str]:
        if uid not in ancestors:
            ancestors[uid] = set()
            for parent in parents.get(uid, []):
                ancestors[uid] |= {parent, *upstream(parent)}
        return ancestors[uid]

    for node in manifest["nodes"].values():
        if node["resource_type"] != "test" or node.get("attached_node"):
            continue
        models = sorted({u for u in node["depends_on"]["nodes"] if u in manifest["nodes"]})
        meta = node.setdefault("config", {}).setdefault("meta", {})
        if (
            len(models) < 2
            or (meta.get("dagster") or {}).get("ref")
            or (node.get("meta") or {}).get("dagster")
        ):
            continue
        chosen = max(models, key=lambda u: (len(upstream(u)), u))
        meta.setdefault("dagster", {})["ref"] = {"name": manifest["nodes"][chosen]["name"]}
    return manifest


def source_key(manifest: Mapping[str, Any], unique_id: str) -> dg.AssetKey:
    return translator().get_asset_key(manifest["sources"][unique_id])


def published_keys(manifest: Mapping[str, Any]) -> list[dg.AssetKey]:
    """The keys of the models the publish step exports (tag ``publish``, transform/dbt_artifacts.py)."""
    tr = translator()
    return sorted(
        (
            tr.get_asset_key(node)
            for node in manifest["nodes"].values()
            if node["resource_type"] == "model"
            and dbt_artifacts.PUBLISH_TAG in {*(node.get("tags") or []), *(node["config"].get("tags") or [])}
            and node["config"].get("enabled", True)
        ),
        key=lambda k: k.to_user_string(),
    )


def source_freshness_rules(manifest: Mapping[str, Any]) -> dict[dg.AssetKey, dict]:
    """Each dbt source table's ``freshness`` rule, by asset key (when it has one and a way to measure it)."""
    out: dict[dg.AssetKey, dict] = {}
    for uid, node in manifest["sources"].items():
        rule = node.get("freshness") or {}
        measurable = node.get("loaded_at_field") or node.get("loaded_at_query")
        if measurable and any((rule.get(k) or {}).get("count") for k in ("warn_after", "error_after")):
            out[source_key(manifest, uid)] = rule
    return out


class DbtBuildConfig(dg.Config):
    """``full_refresh``: rebuild incremental models; ``accept_row_drop``: raw tables (``SCHEMA.TABLE``)
    whose drop the row drop guard lets through this once (docs/operations.md)."""

    full_refresh: bool = False
    accept_row_drop: list[str] = []


@contextlib.contextmanager
def _child_environ(env: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` set to ``env`` for the ``with`` block, then restored exactly."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class ShopDbtCli(DbtCliResource):
    """``DbtCliResource`` without two start-up costs this project does not need.

    dagster-dbt asks the dbt executable for its version (a whole dbt process start) and builds a dbt
    adapter inside the run worker (a second import of dbt and the profile) before every invocation; the
    adapter only serves column metadata and row counts, which this project does not fetch, and the
    version is the locked dbt-core's. Both are private hooks of the pinned dagster-dbt: should a later
    version rename them, these overrides go unused and the defaults run (slower, same result)."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None


TIED_DBT = Path(__file__).with_name("dbt-tied")


def dbt_resource() -> DbtCliResource:
    """dbt from this environment's venv, run from the repo root (the project and profile live there),
    started through ``dbt-tied`` so it dies with the run worker. The wrapper reads the real dbt and a
    Python from the environment, which every child of this process inherits."""
    root = os.fspath(settings.repo_root())
    os.environ["SHOP_TIED_DBT"] = dbt_runner.dbt_command([])[0]
    os.environ["SHOP_TIED_PYTHON"] = sys.executable
    return ShopDbtCli(project_dir=root, profiles_dir=root, dbt_executable=os.fspath(TIED_DBT))


def build_args(config: DbtBuildConfig) -> list[str]:
    args = ["build", *(["--full-refresh"] if config.full_refresh else [])]
    if config.accept_row_drop:
        args += ["--vars", json.dumps({"accept_row_drop": list(config.accept_row_drop)})]
    return args


def dbt_build_assets(manifest_path: Path) -> dg.AssetsDefinition:
    """The ``@dbt_assets`` of the project's manifest at ``manifest_path``."""

    @dbt_assets(
        manifest=load_manifest(manifest_path),
        select=DBT_SELECT,
        name="dbt_build",
        dagster_dbt_translator=translator(),
        op_tags={"kind": "dbt"},
    )
    def _dbt_build(
        context: dg.AssetExecutionContext, dbt: DbtCliResource, config: DbtBuildConfig
    ) -> Iterator[Any]:
        args = build_args(config)
        command = runlog.command(context, "dbt " + " ".join(args))
        wait = flow.lock_wait()
        target = dbt_artifacts.target_dir()
        run_results = target / "run_results.json"
        try:
            with lock.warehouse_lock(command, wait=wait):
                warehouse_check.check()  # a damaged file: one line now, not dbt's retries for minutes
                with steps.logged_step(command, "dbt") as rec:
                    key = pii_key.prepare(settings.exports_dir())  # a lost or changed key: stop before dbt
                    context.log.info("PII key %s: %s", key.status, key.detail)
                    rec.inputs = [("raw_load", s, i) for s, i in sorted(steps.committed_loads().items())]
                    env = dbt_runner.dbt_env(lock.child_env())
                    fingerprint = pii_key.check_build_key(env[pii_key.DBT_ENV_VAR])
                    links = runlog.ops_metadata([rec.run_id])
                    started = time.monotonic()
                    before = run_results.stat().st_mtime_ns if run_results.exists() else None
                    with _child_environ(env):
                        invocation = dbt.cli(args, context=context, target_path=target, raise_on_error=False)
                    try:
                        for event in invocation.stream():
                            if isinstance(event, dg.Output):
                                event = event.with_metadata({**event.metadata, **links})
                            yield event
                    except BaseException:  # terminated, interrupted, a bug: no dbt left writing unlocked
                        signals.stop_child(invocation.process)
                        raise
                    code = invocation.process.wait()
                    summary = None
                    if run_results.exists() and run_results.stat().st_mtime_ns != before:
                        summary = dbt_artifacts.run_summary(run_results)
                    outcome = dbt_runner.DbtOutcome(
                        [*args, *_selection(invocation.process.args)],
                        code,
                        time.monotonic() - started,
                        summary.invocation_id if summary else None,
                        summary,
                        fingerprint,
                    )
                    dbt_runner.record_build(outcome)  # the publish step's "last build passed" check
                    if summary:
                        rec.rows = summary.models_built
                        runlog.tag_run(
                            context,
                            {
                                "dbt_models_built": summary.models_built,
                                "dbt_tests_passed": summary.tests_passed,
                                "dbt_tests_failed": summary.tests_failed,
                            },
                        )
                        context.log.info(
                            "dbt build exited %d: %d models built, tests %d passed, %d failed, %d warned",
                            code,
                            summary.models_built,
                            summary.tests_passed,
                            summary.tests_failed,
                            summary.tests_warned,
                        )
                    if code != 0:
                        failures = summary.failures[:10] if summary else []
                        if any(flow.ROW_DROP_GUARD in f for f in failures):  # name the way out, as make elt
                            failures.append(
                                f"{flow.ROW_DROP_HINT} (here: accept_row_drop in this op's config)"
                            )
                        raise dg.Failure(
                            description=f"dbt build exited {code}; nothing downstream runs, nothing is "
                            "published until a build passes" + "".join(f"\n  {f}" for f in failures),
                            metadata=links,
                        )
        except (lock.WarehouseBusy, pii_key.PiiKeyError, warehouse_check.WarehouseUnreadable) as exc:
            raise dg.Failure(description=f"dbt build: {exc}") from None

    return _dbt_build


SELECTION_FLAGS = ("--select", "-s", "--models", "-m", "--exclude", "--selector")


def _selection(process_args: Any) -> list[str]:
    """The selection dagster-dbt added to the command (it comes last), or [] for the whole project."""
    words = [str(a) for a in process_args]
    at = next((i for i, w in enumerate(words) if w in SELECTION_FLAGS), None)
    if at is None or words[at:] == ["--select", DBT_SELECT]:
        return []
    return words[at:]


def partial_build(record: Mapping[str, Any]) -> bool:
    """Whether a recorded dbt build (``run/dbt_last_build.json``) built only a selection. ``make elt``'s
    changed-only build selects too, but leaves every other node as a full build would write it
    (elt/build_plan.py), so it counts as whole."""
    args = [str(a) for a in record.get("args") or []]
    return any(a in SELECTION_FLAGS for a in args) and not record.get("changed_only")


def realtime_keys(manifest: Mapping[str, Any]) -> list[dg.AssetKey]:
    """The keys of the real-time marts (tag ``realtime``): what the stream keeps fresh."""
    tr = translator()
    return [
        tr.get_asset_key(node)
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and "realtime" in (node.get("tags") or [])
    ]
