"""``python -m elt run``: services → extract → dbt build → publish → summary.

Each step takes the warehouse lock on its own (waiting a bounded time for other writers), so a
stream mode or a manual ``make dbt`` can interleave between steps without corrupting anything, and
each step is recorded in ``ops.runs``. Any failure stops the flow with a message naming the step and
a non-zero exit; nothing is published unless ``dbt build`` exited 0.

The first step, ``pii key``, checks the PII key against the published one before anything runs: a
lost or changed key fails the run before dbt could hash with it (``core.pii_key.prepare``).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from core import lock, pii_key, settings, signals, steps
from core.secrets import scrub
from elt import build_plan, build_state, fleet
from publish import partial, versions
from publish.publish import Attachment, PublishError, PublishResult, publish
from transform import dbt_artifacts, dbt_results, dbt_runner

log = logging.getLogger("elt.flow")

DEFAULT_LOCK_WAIT = 900.0
ROW_DROP_GUARD = "source_row_drop_guard_"  # the guard's test names (macros/tests/row_drop_guard.sql)
ROW_DROP_HINT = (
    "a raw table lost rows since the last accepted build (the 'row drop guard:' line above names it and "
    "its counts): repair the source and re-run, or accept the drop with --accept-row-drop SCHEMA.TABLE"
)


class StepFailed(RuntimeError):
    """A flow step failed; ``step`` names it."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"step '{step}' failed: {message}")
        self.step = step


@dataclass
class StepResult:
    name: str
    status: str
    seconds: float
    detail: str = ""


@dataclass
class FlowResult:
    ok: bool
    seconds: float
    steps: list[StepResult] = field(default_factory=list)
    loaded: list[tuple[str, str, int]] = field(default_factory=list)
    dbt: dbt_artifacts.RunSummary | None = None
    published: PublishResult | None = None
    failed_step: str | None = None
    error: str | None = None
    interrupted: signals.Interrupted | None = None  # SIGTERM / SIGINT (failed_step says during which step)
    partial: partial.Partial | None = None  # --allow-partial went on without some sources
    skipped: str | None = None  # nothing new since the last build: dbt and publish did not run (why)
    plan: build_plan.Plan | None = None  # what the dbt build selected and why (elt/build_plan.py)


def lock_wait() -> float:
    """Bounded wait for the lock per step (``SHOP_LOCK_WAIT`` seconds, default 900)."""
    return float(os.environ.get("SHOP_LOCK_WAIT") or DEFAULT_LOCK_WAIT)


def run_extract(
    command: str,
    full_refresh: bool,
    wait: float,
    sources: list[str] | None = None,
    allow_partial: bool = False,
) -> tuple[float, list[tuple[str, str, int]], dict[str, str]]:
    """The loaders as a child process under our lock; returns seconds, rows loaded per raw table and
    (``allow_partial``, when the loader reported it) the sources that failed while others loaded.

    ``sources`` (``--sources``) limits the loader to those names; empty or None loads every source."""
    args = [sys.executable, "-m", "extract", *(["--full-refresh"] if full_refresh else []), *(sources or [])]
    outcome = partial.outcome_path()
    if allow_partial:
        args += ["--outcome-file", str(outcome)]
        outcome.unlink(missing_ok=True)
    with lock.warehouse_lock(f"{command}: extract", wait=wait), steps.logged_step(command, "extract") as rec:
        before = steps.committed_loads()
        fd = lock.held_fd()
        if not full_refresh and extract_if_unchanged(sources, wait):
            code = 0  # every source probed, none with anything new: no loader process was needed
        else:
            log.info("extract: %s", shlex.join(args[1:]))
            code = signals.run_child(
                args, cwd=settings.repo_root(), env=lock.child_env(), pass_fds=(fd,) if fd is not None else ()
            )
        failed = (partial.read_failures(outcome) if allow_partial and code == 1 else None) or {}
        if code != 0 and not failed:
            raise StepFailed("extract", f"`python -m extract` exited {code} (see its output above)")
        if failed:  # recorded as failed; the flow goes on without them
            rec.status, rec.error = "failed", f"source(s) {', '.join(sorted(failed))} failed ({partial.FLAG})"
        rec.tables = steps.rows_loaded_since(before)
        rec.inputs = [("raw_load_before", schema, load_id) for schema, load_id in sorted(before.items())]
        rec.rows = sum(r for _, _, r in rec.tables)
    return rec.seconds, rec.tables, failed


def extract_if_unchanged(sources: list[str] | None, wait: float) -> bool:
    """The extract step in this process when no source has anything new (extract/probe.py): True when
    it ran and is complete (run log, load horizons), False when some source has something to load (or
    the probe could not tell), and then nothing was written and the loader runs as its own process.

    Why in-process: the loader's process start (an interpreter, dlt, pyarrow, its source files) was
    most of a no-change run once the probe had made the loads themselves unnecessary."""
    from extract import runner  # the loaders: only imported by a run that extracts
    from extract.pipelines import skip_pandas_in_arrow

    skip_pandas_in_arrow()  # the probe's Arrow conversions never need pandas (extract/pipelines.py)
    try:
        return runner.run(sources or [], wait=wait, only_if_unchanged=True) is not None
    except (signals.Interrupted, lock.WarehouseBusy):
        raise
    except Exception as exc:  # the loader process meets it again and reports it properly
        log.info("extract: the in-process probe stopped (%s); starting the loader", type(exc).__name__)
        return False


def run_dbt_build(
    command: str,
    full_refresh: bool,
    wait: float,
    accept_row_drop: list[str] | None = None,
    exclude: list[str] | None = None,
    select: list[str] | None = None,
) -> dbt_runner.DbtOutcome:
    """``dbt build`` (seeds, snapshots, models, tests) under the lock, logged as step ``dbt``.

    ``accept_row_drop`` names raw tables whose drop the row drop guard lets through this once (var
    ``accept_row_drop``, macros/tests/row_drop_guard.sql); ``select`` a changed-only build's selection
    (elt/build_plan.py).
    """
    args = ["build", *(["--full-refresh"] if full_refresh else []), *(exclude or []), *(select or [])]
    if accept_row_drop:
        args += ["--vars", json.dumps({"accept_row_drop": list(accept_row_drop)})]
    with lock.warehouse_lock(f"{command}: dbt build", wait=wait), steps.logged_step(command, "dbt") as rec:
        rec.inputs = [
            ("raw_load", schema, load_id) for schema, load_id in sorted(steps.committed_loads().items())
        ]
        outcome = dbt_runner.run_dbt(args, wait=wait, changed_only=bool(select))
        if outcome.summary:
            rec.rows = outcome.summary.models_built
            dbt_results.record(rec.run_id)  # every node's result, failed builds too (ops.dbt_results)
        if not outcome.ok:
            failures = outcome.summary.failures[:10] if outcome.summary else []
            if any(ROW_DROP_GUARD in f for f in failures):
                failures.append(ROW_DROP_HINT)
            raise StepFailed(
                "dbt build",
                f"dbt exited {outcome.exit_code}; nothing published"
                + ("".join(f"\n  {f}" for f in failures) if failures else ""),
            )
    return outcome


def check_changes(command: str, wait: float) -> tuple[build_state.BuildInputs, build_state.Decision]:
    """The build inputs now and whether they differ from the last successful build's
    (elt/build_state.py), read under the lock so no loader commits in between."""
    with lock.warehouse_lock(f"{command}: build check", wait=wait), steps.connect() as con:
        inputs = build_state.current_inputs(con, dbt_runner.dbt_env(need_key=False))
        decision = build_state.decide(
            con, inputs, exports=settings.exports_dir(), last_build=dbt_runner.last_build()
        )
    return inputs, decision


def built_detail(summary: dbt_artifacts.RunSummary | None, plan: build_plan.Plan) -> str:
    """The dbt step's line: how many of the project's nodes ran, what they were, and why."""
    if summary is None:
        return plan.why
    ran = summary.nodes
    try:
        manifest = json.loads((dbt_artifacts.target_dir() / "manifest.json").read_text())
        total: int | None = build_plan.Graph(manifest).total()
    except (OSError, ValueError):
        total = None
    of = f"all {ran}" if plan.full and total in (None, ran) else f"{ran} of {total or '?'}"
    tests = f"tests {summary.tests_passed} passed, {summary.tests_failed} failed"
    tests += f", {summary.tests_warned} warned" if summary.tests_warned else ""
    return f"built {of} nodes ({summary.models_built} models, {tests}): {plan.why}"


def record_build_state(
    inputs: build_state.BuildInputs | None, result: FlowResult, invocation: str | None
) -> None:
    """After a complete run: remember what it built from, so an unchanged next run can skip. A partial
    run (some models left out) is never recorded. Never fails the run: without a record the next run
    builds."""
    try:
        if inputs is None or result.partial is not None or result.published is None:
            build_state.forget()
            return
        manifest = dbt_artifacts.target_dir() / "manifest.json"
        build_state.record(inputs, invocation, result.published.version_id, manifest)
    except (OSError, ValueError, KeyError) as exc:
        log.warning("could not record the build state (%s): the next run builds in full", exc)


def build_invocation(force: bool) -> dict[str, object]:
    """The dbt build behind this export; refuse (unless forced) when the last one failed."""
    record = dbt_runner.last_build()
    if record is not None:
        if record.get("exit_code") != 0 and not force:
            raise PublishError(
                f"the last `dbt {' '.join(record.get('args', []))}` failed (exit {record.get('exit_code')}, "
                f"{record.get('finished_at')}): not publishing marts from a failed build. "
                "Fix it and re-run `make dbt ARGS=build`, or pass --force."
            )
        command = " ".join(record.get("args", []))
        invocation: dict[str, object] = {"invocation_id": record.get("invocation_id"), "command": command}
        if record.get("pii_key_fingerprint"):  # publish checks the marts were hashed with today's key
            invocation["pii_key_fingerprint"] = record["pii_key_fingerprint"]
        return invocation
    summary = dbt_artifacts.run_summary()
    if not summary.ok and not force:
        raise PublishError(
            f"target/run_results.json ({summary.command}, {summary.invocation_id}) has failures: "
            f"{summary.failures[:5]}; not publishing (or pass --force)"
        )
    return {"invocation_id": summary.invocation_id, "command": summary.command}


def report_attachment() -> list[Attachment]:
    """The report (report/, a consumer of the exports) built into every published version, unless
    ``SHOP_REPORT=off``. Imported here, on top: the publisher knows nothing of it."""
    if not settings.report_enabled():
        return []
    from report import build as report_build

    warehouse = settings.warehouse_path()
    return [
        Attachment(
            "report", lambda staging, manifest: report_build.into_version(staging, manifest, warehouse)
        )
    ]


def run_publish(
    command: str,
    wait: float,
    keep: int,
    invocation: dict[str, object] | None = None,
    force: bool = False,
    rotate_pii_key: bool = False,
    partial_run: partial.Partial | None = None,
    reuse: bool = False,
) -> PublishResult:
    """Publish the ``publish``-tagged marts as a new current version, logged as step ``export``.

    ``reuse`` (the flow): marts equal to the current version's keep its files, and when all are equal
    no new version is made (publish/carry.py).

    Without ``invocation`` (a standalone export) the last dbt build must have succeeded (see
    ``build_invocation``); a refusal is recorded as a failed export run.
    """
    run = steps.new_run(command, "export")
    with (
        steps.kept_if_unlocked(run),
        lock.warehouse_lock(f"{command}: export", wait=wait),
        steps.logged_step(command, "export", run) as rec,
    ):
        if invocation is None:
            invocation = build_invocation(force)
        rec.inputs = [
            ("dbt_invocation", str(invocation.get("invocation_id")), str(invocation.get("command") or "")),
            ("warehouse", str(settings.warehouse_path()), None),
        ]
        specs = dbt_artifacts.publish_specs()
        amend = None
        if partial_run is not None:  # stale marts are carried from the current version (publish/partial.py)
            specs = partial_run.split(specs)
            amend = partial_run.hook(settings.exports_dir())
        result = publish(
            specs,
            warehouse=settings.warehouse_path(),
            exports=settings.exports_dir(),
            dbt_invocation=invocation,
            keep=keep,
            rotate_pii_key=rotate_pii_key,
            amend_manifest=amend,
            attachments=report_attachment(),
            reuse=reuse,
        )
        key = result.pii_key
        rec.inputs.append(("pii_key", str(key.get("fingerprint")), key.get("rotated_at")))
        rec.rows = result.rows
        rec.tables = [("marts", m.name, m.rows) for m in result.marts]
    return result


def run_flow(
    *,
    services: bool = True,
    full_refresh: bool = False,
    keep: int = versions.DEFAULT_KEEP,
    rotate_pii_key: bool = False,
    accept_row_drop: list[str] | None = None,
    sources: list[str] | None = None,
    allow_partial: bool = False,
    full_build: bool = False,
) -> FlowResult:
    """Run the whole flow; never raises for a step failure (the result says which step failed).

    When no source committed a new load and no definition changed since the last successful run
    (elt/build_state.py), dbt and publish are skipped and the result says so (``skipped``);
    ``full_build`` (``--full-build``, or ``SHOP_FULL_BUILD=1``) and every option that changes what is
    built (full refresh, key rotation, an accepted row drop, a partial run) build regardless.

    ``sources`` (checked names, ``elt.selection.parse``) limits the extract step, and the services step
    to the embedded ones among them; dbt builds and publishes everything as usual. ``allow_partial``:
    sources that fail while others load leave out what depends on them (publish/partial.py)."""
    command = (
        shlex.join(["python", "-m", "elt", "run", *sys.argv[2:]]) if sys.argv[1:2] == ["run"] else "elt run"
    )
    wait = lock_wait()
    started = time.monotonic()
    result = FlowResult(ok=False, seconds=0.0)
    handle: fleet.FleetHandle | None = None
    flow_run = steps.new_run(command, "run")  # before the lock: a lock that cannot be had is logged too
    step = "start"
    try:
        with lock.warehouse_lock(f"{command}: start", wait=wait):
            steps.open_run(flow_run)
            step = "pii key"  # under the lock: only a publisher changes exports/current
            t0 = time.monotonic()
            key = pii_key.prepare(settings.exports_dir(), rotate=rotate_pii_key)
        result.steps.append(StepResult("pii key", key.status, time.monotonic() - t0, key.detail))
        if services:
            step = "services"
            t0 = time.monotonic()
            try:
                handle = fleet.ensure_up(sources)
            except fleet.FleetError as exc:
                raise StepFailed("services", str(exc)) from exc
            state = "started" if handle.started else ("running" if handle.managed else "remote")
            state = state if handle.urls else "none"  # no embedded source selected
            started_services = ", ".join(handle.started_services)
            result.steps.append(StepResult("services", state, time.monotonic() - t0, started_services))

        step = "extract"
        seconds, result.loaded, failed = run_extract(command, full_refresh, wait, sources, allow_partial)
        result.partial = partial.Partial.of(failed) if failed else None
        rows = sum(r for _, _, r in result.loaded)
        state, note = ("partial", f"; failed: {', '.join(sorted(failed))}") if failed else ("ok", "")
        result.steps.append(StepResult("extract", state, seconds, f"{rows:,} new/changed rows{note}"))

        step = "build check"
        t0 = time.monotonic()
        inputs, decision = check_changes(command, wait)
        forced = [
            name
            for name, on in (
                (build_state.FORCE_FLAG, full_build or build_state.forced()),
                ("--full-refresh", full_refresh),
                (pii_key.ROTATE_FLAG, rotate_pii_key),
                ("--accept-row-drop", bool(accept_row_drop)),
                (partial.FLAG, result.partial is not None),
            )
            if on
        ]
        if not decision.build and build_plan.horizons_reach_published(decision.changes):
            decision = build_state.Decision(
                True,
                ["the load horizons moved and a published model reads them"],
                decision.version,
                decision.changes,
            )
        if not decision.build and not forced:
            result.skipped = decision.describe()
            result.steps.append(StepResult("dbt build", "skipped", time.monotonic() - t0, result.skipped))
            stays = f"version {decision.version} stays current"
            result.steps.append(StepResult("publish", "skipped", 0.0, stays))
            result.ok = True
            return result
        log.info("build check: %s", f"forced ({', '.join(forced)})" if forced else decision.describe())
        plan = build_plan.plan(decision.changes, forced)
        log.info("build plan: %s%s", plan.why, f" ({shlex.join(plan.dbt_args())})" if not plan.full else "")

        step = "dbt build"
        t0 = time.monotonic()
        exclude = result.partial.exclude_args() if result.partial else None
        outcome = run_dbt_build(command, full_refresh, wait, accept_row_drop, exclude, plan.dbt_args())
        result.dbt = outcome.summary
        result.plan = plan
        detail = built_detail(outcome.summary, plan)
        result.steps.append(StepResult("dbt build", "ok", time.monotonic() - t0, detail))

        step = "publish"
        t0 = time.monotonic()
        invocation = {"invocation_id": outcome.invocation_id, "command": "build"}
        if outcome.pii_key_fingerprint:
            invocation["pii_key_fingerprint"] = outcome.pii_key_fingerprint
        if outcome.summary:
            invocation["generated_at"] = outcome.summary.generated_at
        result.published = run_publish(
            command,
            wait,
            keep,
            invocation,
            rotate_pii_key=rotate_pii_key,
            partial_run=result.partial,
            reuse=not (full_build or build_state.forced()),  # --full-build writes every mart again
        )
        p = result.published
        kept = sum(m.carried for m in p.marts)
        if p.unchanged:
            state, detail = "unchanged", f"version {p.version_id} stays current: every mart equals it"
        else:
            state, detail = (
                "ok",
                f"version {p.version_id}" + (f", {kept} unchanged mart(s) carried" if kept else ""),
            )
        result.steps.append(StepResult("publish", state, time.monotonic() - t0, detail))
        if "report" in p.attachments and not p.unchanged:  # built inside the publish, before the switch
            report = result.published.attachments["report"]
            detail = f"{result.published.version_dir / report['path']} (its time is part of publish)"
            result.steps.append(StepResult("report", "ok", report.get("seconds", 0.0), detail))
        record_build_state(inputs, result, outcome.invocation_id)
        result.ok = True
    except signals.Interrupted as exc:  # the children got SIGTERM and ended; clean up below, then exit 128+N
        result.interrupted, result.failed_step, result.error = exc, step, f"{exc} during step '{step}'"
    except StepFailed as exc:
        result.failed_step, result.error = exc.step, str(exc)
    except (lock.WarehouseBusy, dbt_artifacts.ArtifactError, RuntimeError, OSError, duckdb.Error) as exc:
        result.failed_step, result.error = step, f"step '{step}' failed: {type(exc).__name__}: {exc}"
    except Exception as exc:  # an unexpected bug: still name the step, keep the traceback in the log
        log.exception("unexpected error in step %s", step)
        result.failed_step, result.error = step, f"step '{step}' failed: {type(exc).__name__}: {exc}"
    finally:
        if handle is not None:
            t0 = time.monotonic()
            state, detail = fleet.stop(handle)  # stops only what runs started, once no run uses it
            if state:
                result.steps.append(StepResult("services stop", state, time.monotonic() - t0, detail))
        result.seconds = time.monotonic() - started
        _close_flow_run(flow_run, result, wait)
    return result


def _close_flow_run(run: steps.RunRecord, result: FlowResult, wait: float) -> None:
    """Finish the flow's own ``ops.runs`` row (step ``run``). Never raises: when the lock cannot be had
    (busy, read-only folder) the row is kept in the fallback file for the next run (core/ops_fallback.py).
    A flow that did not get the lock at its start does not wait for it a second time."""
    rows = result.published.rows if result.published else None
    status = "success" if result.ok else ("interrupted" if result.interrupted else "failed")
    error = result.error
    if result.ok and result.partial:
        status, error = "partial", result.partial.summary()
    try:
        with lock.warehouse_lock("elt run: finish", wait=0.0 if result.failed_step == "start" else wait):
            steps.close_run(run, status, rows, error)
    except (lock.WarehouseBusy, OSError) as exc:
        steps.keep_run(run, exc, status, rows, error)


def format_summary(result: FlowResult, exports: Path | None = None) -> str:
    """The short human summary printed at the end of ``elt run``."""
    exports = exports or settings.exports_dir()
    lines = []
    if result.ok and result.partial:
        lines.append(
            f"elt run PARTIAL in {result.seconds:.1f}s: published what the failed source(s) do not feed"
        )
        lines.append(f"  {scrub(result.partial.summary())}")
    elif result.ok and result.skipped:
        lines.append(f"elt run OK in {result.seconds:.1f}s: dbt and publish skipped, {result.skipped}")
    elif result.ok:
        lines.append(f"elt run OK in {result.seconds:.1f}s")
    elif result.interrupted:
        lines.append(
            f"elt run {result.interrupted} at step '{result.failed_step}' after {result.seconds:.1f}s: "
            "its processes stopped, nothing published; the next run carries on from what committed"
        )
    else:
        lines.append(f"elt run FAILED at step '{result.failed_step}' after {result.seconds:.1f}s")
        lines.append(f"  {scrub(result.error)}")
        lines.append("  nothing was published by this run; the current export version is unchanged")
    for s in result.steps:
        lines.append(f"  {s.name:<14} {s.status:<8} {s.seconds:7.1f}s  {s.detail}".rstrip())
    if result.loaded:
        changed = [(sch, t, r) for sch, t, r in result.loaded if r]
        lines.append(f"  loaded {sum(r for *_, r in result.loaded):,} rows into {len(changed)} raw table(s)")
        for sch, t, r in changed:
            lines.append(f"    {sch}.{t:<28} {r:>10,}")
    if result.published:
        p = result.published
        lines.append(
            f"  published {len(p.marts)} marts, {p.rows:,} rows -> {exports / 'current'} ({p.version_dir})"
        )
        for m in p.marts:
            note = "  (unchanged, carried)" if m.carried and not p.unchanged else ""
            if m.linked_bytes and not m.carried:
                note = f"  ({m.linked_bytes / m.bytes:.0%} of its bytes in unchanged partitions, linked)"
            lines.append(f"    {m.name:<32} {m.rows:>10,} rows  {m.files:>4} file(s){note}")
    return "\n".join(lines)
