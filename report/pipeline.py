"""The pipeline page: runs per step, source freshness, failures, stream latency, dbt test results.

Read from the warehouse's ``ops`` tables (``ops.runs``, ``ops.source_horizons``, ``ops.stream_batches``,
``ops.dbt_results``) and the raw schemas' ``_dlt_loads``, attached read-only, and cut at the version's
``created_at`` (``as_of``): a report rebuilt later for an old version shows the pipeline as it was
when that version was published. A table the warehouse does not have yet (no stream ever ran) gives a
section that says so instead of a chart.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from report.page import Kpi, Page, Section, Table

LAYOUT = {"margin": {"l": 60, "r": 20, "t": 30, "b": 50}, "height": 380, "template": "plotly_white"}
WAREHOUSE = "wh"  # the alias the warehouse is attached under (read-only)
FAILURES_SHOWN = 20
ERROR_CHARS = 240


@dataclass
class Ops:
    """What the report could read of the warehouse: its ``ops`` tables (as views ``ops.<name>``), the
    raw schemas with committed loads, and why not when it could not be opened."""

    tables: set[str] = field(default_factory=set)
    raw_schemas: list[str] = field(default_factory=list)
    error: str | None = None


RUNS_SQL = """
select step, started_at, epoch(finished_at - started_at) as seconds, rows, status
from ops.runs
where started_at <= $as_of and finished_at is not null
order by started_at
"""

STEPS_SQL = """
select
    step,
    count(*) as runs,
    count(*) filter (where status = 'success') as succeeded,
    count(*) filter (where status in ('failed', 'interrupted')) as failed,
    round(median(epoch(finished_at - started_at)), 2) as median_seconds,
    max(started_at) as last_started,
    arg_max(rows, started_at) as last_rows
from ops.runs
where started_at <= $as_of
group by step
order by step
"""

FAILURES_SQL = f"""
select started_at, step, status, command, error
from ops.runs
where status in ('failed', 'interrupted') and started_at <= $as_of
order by started_at desc
limit {FAILURES_SHOWN}
"""

HORIZONS_SQL = """
select service, max(cutoff_at) as last_cutoff_at
from ops.source_horizons
where recorded_at <= $as_of
group by service
order by service
"""

LATENCY_SQL = """
select r.finished_at, b.events, b.latency_p50_s, {p95} as latency_p95_s
from ops.stream_batches as b
inner join ops.runs as r on b.run_id = r.run_id
where b.status = 'success' and b.latency_p50_s is not null and r.finished_at <= $as_of
order by r.finished_at
"""

# the run whose tests the page shows: the newest dbt build with tests at or before the version
LATEST_TESTS_CTE = """
with latest as (
    select run_id
    from ops.dbt_results
    where resource_type in ('test', 'unit_test') and generated_at <= $as_of
    order by generated_at desc
    limit 1
)
"""

DBT_LATEST_SQL = (
    LATEST_TESTS_CTE
    + """
select test_kind, status, count(*) as tests
from ops.dbt_results
where run_id in (select run_id from latest) and resource_type in ('test', 'unit_test')
group by all
order by test_kind, status
"""
)

DBT_FAILING_SQL = (
    LATEST_TESTS_CTE
    + """
select unique_id, status, failures
from ops.dbt_results
where run_id in (select run_id from latest) and status in ('fail', 'error', 'warn')
order by status, unique_id
"""
)

DBT_HISTORY_SQL = """
select
    generated_at,
    count(*) filter (where status = 'pass') as passed,
    count(*) filter (where status in ('fail', 'error')) as failed,
    count(*) filter (where status = 'warn') as warned
from ops.dbt_results
where resource_type in ('test', 'unit_test') and generated_at <= $as_of
group by run_id, generated_at
order by generated_at
"""


def _loads_sql(raw_schemas: list[str]) -> str:
    """Newest committed dlt load per raw schema, as of the version (one union over the schemas)."""
    parts = [
        f"select '{s}' as source, max(inserted_at) as last_load_at, count(*) as committed_loads "
        f'from {WAREHOUSE}."{s}"._dlt_loads where status = 0 and inserted_at <= $as_of'
        for s in raw_schemas
    ]
    return "\nunion all\n".join(parts) + "\norder by source"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _rows(con: duckdb.DuckDBPyConnection, sql: str, as_of: datetime) -> list[tuple[Any, ...]]:
    return con.execute(sql, {"as_of": as_of}).fetchall()


def _missing(section_id: str, title: str, caption: str, why: str) -> Section:
    return Section(section_id, title, caption, empty=why)


def page(con: duckdb.DuckDBPyConnection, ops: Ops, manifest: dict[str, Any], as_of: datetime) -> Page:
    """The pipeline page from the ``ops`` views on ``con`` and the version's manifest."""
    unavailable = f"the warehouse's ops tables could not be read: {ops.error}" if ops.error else None
    kpis: list[Kpi] = []
    sections = [
        _runs_section(con, ops, as_of, kpis, unavailable),
        _freshness_section(con, ops, manifest, as_of, kpis, unavailable),
        _high_water_section(manifest),
        _failures_section(con, ops, as_of, unavailable),
        _latency_section(con, ops, as_of, kpis, unavailable),
        *_dbt_sections(con, ops, as_of, kpis, unavailable),
    ]
    return Page(
        "pipeline",
        "Pipeline",
        f"How the data got here, from the run log in the warehouse (ops tables) as of this version "
        f"({as_of.isoformat()}).",
        kpis,
        sections,
    )


def _runs_section(
    con: duckdb.DuckDBPyConnection, ops: Ops, as_of: datetime, kpis: list[Kpi], unavailable: str | None
) -> Section:
    title, caption = (
        "Runs per step",
        "Every finished run of each step (ops.runs): its duration (top) and the rows it reported "
        "(bottom): rows loaded by extract, models built by dbt, rows published by export.",
    )
    if "runs" not in ops.tables:
        return _missing("runs-per-step", title, caption, unavailable or "no runs recorded yet")
    runs = _rows(con, RUNS_SQL, as_of)
    steps = _rows(con, STEPS_SQL, as_of)
    by_step: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for row in runs:
        by_step[row[0]].append(row)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    for i, (step, rows) in enumerate(sorted(by_step.items())):
        x = [_iso(r[1]) for r in rows]
        color = f"hsl({(i * 67) % 360}, 60%, 45%)"
        marker = {"color": color, "size": 7}
        fig.add_trace(
            go.Scatter(
                x=x, y=[r[2] for r in rows], name=step, legendgroup=step, mode="markers", marker=marker
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[r[3] for r in rows],
                name=step,
                legendgroup=step,
                showlegend=False,
                mode="markers",
                marker=marker,
            ),
            row=2,
            col=1,
        )
    fig.update_layout(**{**LAYOUT, "height": 520})
    fig.update_yaxes(title_text="seconds", row=1, col=1)
    fig.update_yaxes(title_text="rows (log)", type="log", row=2, col=1)  # dbt's models next to loads of rows
    table = Table(
        ["step", "runs", "succeeded", "failed", "median seconds", "last started (UTC)", "last rows"],
        [[r[0], r[1], r[2], r[3], r[4], _iso(r[5]), r[6]] for r in steps],
    )
    flows = next((r for r in steps if r[0] == "run"), None)
    kpis.append(
        Kpi("flow_runs", "Flow runs", flows[1] if flows else 0, "int", "make elt / python -m elt run")
    )
    kpis.append(Kpi("failed_runs", "Failed runs (all steps)", sum(r[3] for r in steps), "int"))
    return Section(
        "runs-per-step", title, caption, [RUNS_SQL, STEPS_SQL], figure=fig if runs else None, table=table
    )


def _freshness_section(
    con: duckdb.DuckDBPyConnection,
    ops: Ops,
    manifest: dict[str, Any],
    as_of: datetime,
    kpis: list[Kpi],
    unavailable: str | None,
) -> Section:
    title, caption = (
        "Freshness per source",
        "Hours from each source's newest committed load (raw_<service>._dlt_loads) to this version, and "
        "the newest cutoff the loaders recorded for each service (ops.source_horizons: what the marts' "
        "consistent cut can reach).",
    )
    if not ops.raw_schemas:
        return _missing("source-freshness", title, caption, unavailable or "no source loaded yet")
    sql = [_loads_sql(ops.raw_schemas)]
    loads = _rows(con, sql[0], as_of)
    horizons: dict[str, datetime] = {}
    if "source_horizons" in ops.tables:
        sql.append(HORIZONS_SQL)
        horizons = {r[0]: r[1] for r in _rows(con, HORIZONS_SQL, as_of)}
    ages = [(r[0], None if r[1] is None else (as_of - r[1]).total_seconds() / 3600) for r in loads]
    fig = go.Figure(
        go.Bar(
            x=[a[0] for a in ages],
            y=[a[1] for a in ages],
            hovertemplate="%{x}: %{y:.2f} h before the version<extra></extra>",
        )
    )
    fig.update_layout(**LAYOUT, yaxis_title="hours before the version")
    table = Table(
        [
            "source",
            "newest committed load (UTC)",
            "committed loads",
            "hours before the version",
            "last cutoff (UTC)",
        ],
        [
            [
                r[0],
                _iso(r[1]),
                r[2],
                None if a[1] is None else round(a[1], 2),
                _iso(horizons.get(r[0].removeprefix("raw_"))),
            ]
            for r, a in zip(loads, ages, strict=True)
        ],
    )
    known = [a[1] for a in ages if a[1] is not None]
    kpis.append(
        Kpi("oldest_source_hours", "Oldest source (hours)", round(max(known), 2) if known else None, "text")
    )
    return Section("source-freshness", title, caption, sql, figure=fig, table=table)


def _high_water_section(manifest: dict[str, Any]) -> Section:
    rows = []
    for name, mart in manifest.get("marts", {}).items():
        mark = mart.get("high_water_mark") or {}
        rows.append([name, mart.get("rows"), mark.get("column"), mark.get("value")])
    return Section(
        "high-water-marks",
        "Data high-water marks",
        "Per published mart: its rows and the newest value of its high-water-mark column "
        "(meta publish_high_water_mark), from this version's manifest.",
        table=Table(["mart", "rows", "column", "newest value"], rows),
    )


def _failures_section(
    con: duckdb.DuckDBPyConnection, ops: Ops, as_of: datetime, unavailable: str | None
) -> Section:
    title, caption = (
        "Failures",
        f"The latest {FAILURES_SHOWN} failed or interrupted runs (ops.runs; errors are stored scrubbed "
        "of secrets, first line shown).",
    )
    if "runs" not in ops.tables:
        return _missing("failures", title, caption, unavailable or "no runs recorded yet")
    rows = _rows(con, FAILURES_SQL, as_of)
    shown = []
    for started, step, status, command, error in rows:
        first = (error or "").strip().splitlines()[0] if (error or "").strip() else ""
        shown.append([_iso(started), step, status, command, first[:ERROR_CHARS]])
    return Section(
        "failures",
        title,
        caption,
        [FAILURES_SQL],
        table=Table(["started (UTC)", "step", "status", "command", "error"], shown) if shown else None,
        empty=None if shown else "no failed run recorded",
    )


def _latency_section(
    con: duckdb.DuckDBPyConnection, ops: Ops, as_of: datetime, kpis: list[Kpi], unavailable: str | None
) -> Section:
    title, caption = (
        "Stream latency",
        "Per stream micro-batch (ops.stream_batches): seconds from an event's occurred_at to the "
        "real-time marts publishing it, p50 and p95 over the batch's events.",
    )
    if "stream_batches" not in ops.tables:
        return _missing(
            "stream-latency", title, caption, unavailable or "the stream has not run (make stream)"
        )
    columns = {r[0] for r in con.execute("describe ops.stream_batches").fetchall()}
    sql = LATENCY_SQL.format(p95="b.latency_p95_s" if "latency_p95_s" in columns else "null::double")
    rows = _rows(con, sql, as_of)
    if not rows:
        return Section("stream-latency", title, caption, [sql], empty="no published stream batch yet")
    x = [_iso(r[0]) for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=[r[2] for r in rows], name="p50", mode="lines+markers"))
    fig.add_trace(go.Scatter(x=x, y=[r[3] for r in rows], name="p95", mode="lines+markers"))
    fig.update_layout(**LAYOUT, yaxis_title="seconds", hovermode="x")
    kpis.append(Kpi("stream_p95_last", "Stream p95, last batch (s)", rows[-1][3], "text"))
    return Section("stream-latency", title, caption, [sql], figure=fig)


STATUS_COLORS = {
    "pass": "#2f9e44",
    "warn": "#f08c00",
    "fail": "#e03131",
    "error": "#862e9c",
    "skipped": "#868e96",
}


def _dbt_sections(
    con: duckdb.DuckDBPyConnection, ops: Ops, as_of: datetime, kpis: list[Kpi], unavailable: str | None
) -> list[Section]:
    title, caption = (
        "dbt tests, latest build",
        "Every data and unit test of the newest dbt invocation that ran tests (ops.dbt_results), by kind "
        "of test and status; failing and warning tests listed below.",
    )
    if "dbt_results" not in ops.tables:
        return [_missing("dbt-tests", title, caption, unavailable or "no dbt results recorded yet")]
    latest = _rows(con, DBT_LATEST_SQL, as_of)
    if not latest:
        return [Section("dbt-tests", title, caption, [DBT_LATEST_SQL], empty="no dbt test has run yet")]
    kinds = sorted({r[0] or "other" for r in latest})
    counts = {(r[0] or "other", r[1]): r[2] for r in latest}
    fig = go.Figure()
    for status in sorted(
        {r[1] for r in latest}, key=lambda s: list(STATUS_COLORS).index(s) if s in STATUS_COLORS else 9
    ):
        fig.add_trace(
            go.Bar(
                x=kinds,
                y=[counts.get((k, status), 0) for k in kinds],
                name=status,
                marker_color=STATUS_COLORS.get(status),
            )
        )
    fig.update_layout(**LAYOUT, barmode="stack", yaxis_title="tests")
    failing = _rows(con, DBT_FAILING_SQL, as_of)
    passed = sum(v for (_, s), v in counts.items() if s == "pass")
    failed = sum(v for (_, s), v in counts.items() if s in ("fail", "error"))
    kpis.append(Kpi("dbt_tests_passed", "dbt tests passed", passed, "int", "latest build"))
    kpis.append(Kpi("dbt_tests_failed", "dbt tests failed", failed, "int", "latest build"))
    history = _rows(con, DBT_HISTORY_SQL, as_of)
    hist_fig = go.Figure()
    x = [_iso(r[0]) for r in history]
    for i, name in enumerate(("passed", "failed", "warned"), start=1):
        color = {
            "passed": STATUS_COLORS["pass"],
            "failed": STATUS_COLORS["fail"],
            "warned": STATUS_COLORS["warn"],
        }
        hist_fig.add_trace(
            go.Scatter(
                x=x, y=[r[i] for r in history], name=name, mode="lines+markers", line_color=color[name]
            )
        )
    hist_fig.update_layout(**LAYOUT, yaxis_title="tests", hovermode="x")
    return [
        Section(
            "dbt-tests",
            title,
            caption,
            [DBT_LATEST_SQL, DBT_FAILING_SQL],
            figure=fig,
            table=Table(["test", "status", "failing rows"], [list(r) for r in failing]) if failing else None,
        ),
        Section(
            "dbt-test-history",
            "dbt tests over builds",
            "Tests passed, failed and warned in each dbt invocation recorded in ops.dbt_results.",
            [DBT_HISTORY_SQL],
            figure=hist_fig,
        ),
    ]
