"""The cost group: what a whole ``elt run`` costs when nothing changed and after a small change,
next to a full run, with the dbt nodes it built and the Parquet bytes it published.

Why a chain on one warehouse: the four runs are one operator's day - a full run on a fresh workspace,
the same run again with nothing new in the services (elt/build_state.py: dbt and publish skipped), one
after the simulator changed ``--change-fraction`` of the non-event records (dbt builds what the new
loads reach, elt/build_plan.py; the publish carries every unchanged mart, publish/carry.py), then one
after new events only (a change in one service: dbt builds the events lineage and the consistent cut's
own models, nothing of the other services). The group mutates the fleet's data, so it runs last.

Correctness of every run, as in the other groups: the raw tables against the services' SQLite files, the
current published version against the warehouse marts; the no-change run must have published nothing
(same current version, dbt never ran), the changed runs a new version, and the events-only run must have
been a changed-only build (fewer nodes than the full run, none of the consistent cut's marts).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench.checks import Check
from bench.measure import Measurement
from bench.ratios import Ratio, ratio
from bench.scenarios import ALL, PY, Context, change_records, check_publish, fresh, raw_check
from bench.subjects import Group, Subject

FULL, UNCHANGED, CHANGED = "elt run (full)", "elt run (no change)", "elt run (after the change)"
ONE = "elt run (events changed)"
RUNS = (FULL, UNCHANGED, CHANGED, ONE)
# browse sessions the simulator adds before the events-only run (new events: the events service only)
ONE_SERVICE_SESSIONS = 200
BUILD_NODES = ("model.", "seed.", "snapshot.")


def _paths(ctx: Context) -> dict[str, Path]:
    base = ctx.base / "cost"
    return {
        "warehouse": ctx.warehouse("cost"),
        "exports": ctx.exports("cost"),
        "run": base / "run",
        "target": base / "target",
        "logs": base / "logs",
    }


def _nodes_built(target: Path, since: float) -> int:
    """Models, seeds and snapshots dbt ran successfully in an invocation that ended after ``since``
    (0 when dbt did not run)."""
    path = target / "run_results.json"
    if not path.exists() or path.stat().st_mtime < since:
        return 0
    results = json.loads(path.read_text()).get("results") or []
    return sum(1 for r in results if r["unique_id"].startswith(BUILD_NODES) and r["status"] == "success")


def _built(target: Path, since: float) -> set[str]:
    """The names of the models, seeds and snapshots built in an invocation that ended after ``since``."""
    path = target / "run_results.json"
    if not path.exists() or path.stat().st_mtime < since:
        return set()
    results = json.loads(path.read_text()).get("results") or []
    return {r["unique_id"].split(".")[-1] for r in results if r["unique_id"].startswith(BUILD_NODES)}


def _bytes_written(exports: Path, version_before: str | None) -> tuple[str | None, int]:
    """The current version and the Parquet bytes it wrote itself (carried marts are links: 0); 0 when
    the run made no new version."""
    manifest_path = exports / "current" / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return None, 0
    version = manifest.get("version")
    if version == version_before:
        return version, 0
    written = sum(
        f["bytes"]
        for m in manifest["marts"].values()
        if "carried_over" not in m
        for f in m["files"]
        if "written_in_version" not in f  # a partition file linked from an earlier version
    )
    return version, written


def cost_group(ctx: Context, avail: dict[str, str | None], metrics: dict[str, dict[str, list]]) -> Group:
    """The chain full → no change → after the change, on one warehouse; ``metrics`` collects per run
    the dbt nodes built and the publish bytes written (for ``cost_ratios``)."""
    g = Group(
        "cost",
        f"Cost follows the change: a whole `elt run` (fleet already up) full, with nothing new, and after "
        f"{ctx.cfg.change_fraction:.0%} of the records changed, scale {ctx.fleet.scale:g}",
    )
    why = avail["elt run"] or avail["simulator"]
    if why:
        for name in RUNS:
            g.unavailable[name] = why
        return g
    p = _paths(ctx)
    env = ctx.env("cost", p["warehouse"], p["exports"])
    env.update(
        SHOP_RUN_DIR=str(p["run"]),
        DBT_TARGET_PATH=str(p["target"]),
        DBT_LOG_PATH=str(p["logs"]),
        # The consistent cut with no margin: the simulator's changes have all committed before a run
        # starts (as in the dbt suite's world), so the run after the change leaves no order waiting for
        # the cut. With the defaults the orders changed in the last minute would keep every later run
        # building (docs/consistency.md, elt/build_state.py): right for live sources, not this chain.
        SHOP_MAX_COMMIT_DELAY_SECONDS="0",
        SHOP_SETTLE_SECONDS="0",
    )
    state: dict[str, Any] = {"version": None, "started": 0.0, "full_nodes": None}
    cmd = [PY, "-m", "elt", "run", "--no-services"]

    def before(reset: bool = False, change: bool = False, events: bool = False):
        def prepare() -> None:
            import time

            from services.simulator import Simulator

            if reset:
                fresh(p["warehouse"], p["exports"], p["run"], p["target"], Path(env["DLT_DATA_DIR"]))
            if change:
                g.notes.append(change_records(ctx, ctx.cfg.change_fraction))
            if events:
                with Simulator(ctx.fleet.data_dir, ctx.cfg.seed) as sim:
                    sim.change("browse_session", ONE_SERVICE_SESSIONS)
                g.notes.append(f"before the events-only run: {ONE_SERVICE_SESSIONS} new browse sessions")
            exports = p["exports"] / "current"
            state["version"] = exports.resolve().name if exports.exists() else None
            state["started"] = time.time()

        return prepare

    def check(name: str):
        def run_check(m: Measurement) -> Check:
            raw = raw_check(ctx, p["warehouse"], ALL)
            published = check_publish(p["exports"], p["warehouse"])
            problems = raw.problems + published.problems
            stdout = Path(m.stdout_path).read_text() if m.stdout_path else ""
            summary = next((line for line in stdout.splitlines() if line.startswith("elt run ")), "")
            version, written = _bytes_written(p["exports"], state["version"])
            nodes = _nodes_built(p["target"], state["started"])
            skipped = "dbt and publish skipped" in summary
            if name == UNCHANGED and (not skipped or version != state["version"] or nodes):
                problems.append(f"a run with nothing new built or published: {summary!r}, {nodes} nodes")
            if name != UNCHANGED and (skipped or version == state["version"]):
                problems.append(f"the run did not build and publish a new version: {summary!r}")
            if name == FULL:
                state["full_nodes"] = nodes
            if name == ONE:
                built = _built(p["target"], state["started"])
                cut_marts = built & {"fct_orders", "fct_order_items", "fct_payments", "dim_customers"}
                if cut_marts or not state["full_nodes"] or nodes >= state["full_nodes"]:
                    problems.append(
                        f"the events-only run was not a changed-only build: {nodes} nodes "
                        f"(full run: {state['full_nodes']}), consistent-cut marts built: {sorted(cut_marts)}"
                    )
            if not problems:
                metrics.setdefault(name, {}).setdefault("nodes", []).append(nodes)
                metrics[name].setdefault("bytes", []).append(written)
            return Check(not problems, raw.rows, problems)

        return run_check

    g.chains.append(
        [
            Subject(
                FULL,
                cmd,
                check(FULL),
                env=env,
                prepare=before(reset=True),
                label="fresh workspace",
                profile=False,  # dbt's build: profiled by the scale group
            ),
            Subject(
                UNCHANGED,
                cmd,
                check(UNCHANGED),
                env=env,
                prepare=before(),
                label="the same run again, nothing new in the services",
            ),
            Subject(
                CHANGED,
                cmd,
                check(CHANGED),
                env=env,
                prepare=before(change=True),
                label=f"after the simulator changed {ctx.cfg.change_fraction:.0%} of the non-event records",
                profile=False,  # a profile re-runs it without a new change: it would measure a skip
            ),
            Subject(
                ONE,
                cmd,
                check(ONE),
                env=env,
                prepare=before(events=True),
                label=f"after {ONE_SERVICE_SESSIONS} new browse sessions (the events service only)",
                profile=False,
            ),
        ]
    )
    g.subjects.extend(g.chains[0])
    return g


def cost_ratios(stats: dict[str, dict], metrics: dict[str, dict[str, list]], scale: float) -> list[Ratio]:
    """The issue's cost targets: no-change seconds, incremental ÷ full; nodes and bytes per run (info)."""

    def wall(name: str) -> float | None:
        value = stats.get(name, {}).get("wall_median_s")
        return float(value) if value else None

    def median(name: str, key: str) -> float | None:
        values = metrics.get(name, {}).get(key)
        return float(statistics.median(values)) if values else None

    target, limit = ("≤ 10%", 0.10) if scale >= 10 else ("≤ 25%", 0.25)
    out = [
        ratio(
            "no-change elt run (s)",
            "≤ 3 s",
            wall(UNCHANGED),
            1.0,
            lambda v: v <= 3,
            "median wall time of `elt run --no-services` with nothing new (fleet already up)",
            UNCHANGED,
        ),
        ratio(
            f"incremental ÷ full elt run @ scale {scale:g}",
            target,
            wall(CHANGED),
            wall(FULL),
            lambda v: v <= limit,
            "median wall time: the run after the change ÷ the full run",
            CHANGED,
        ),
    ]
    out.append(
        ratio(
            f"events-only ÷ full elt run @ scale {scale:g}",
            "info",
            wall(ONE),
            wall(FULL),
            lambda v: True,
            "median wall time: the run after new events only (a changed-only build) ÷ the full run",
            ONE,
        )
    )
    for name in RUNS:
        out.append(
            ratio(f"dbt nodes built: {name}", "info", median(name, "nodes"), 1.0, lambda v: True, "count")
        )
        out.append(
            ratio(
                f"publish bytes written: {name}",
                "info",
                median(name, "bytes"),
                1.0,
                lambda v: True,
                "bytes of Parquet the run wrote (carried marts are hard links)",
            )
        )
    return out
