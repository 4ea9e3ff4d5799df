"""The report published with the shared clean run's version (``report.html``, built by the publish).

It is listed in the manifest with its sha256; it opens from a ``file://`` URL in headless Chromium,
renders every chart (plotly's SVG in the DOM), logs no console error and sends no request off the
machine; and the numbers it shows equal queries over the published marts, computed here separately
(DuckDB and polars over the Parquet files, the warehouse's ``ops`` tables read-only).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from publish.verify import verify_version
from tests.pytest.consumers.browser import Action, Chromium, PageVisit
from tests.pytest.support.world import Published

PNG = b"\x89PNG\r\n\x1a\n"
RENDERED = (
    "document.querySelectorAll('.plotly-graph-div').length > 0 && "
    "Array.from(document.querySelectorAll('.plotly-graph-div')).every(d => d.querySelector('.main-svg'))"
)
# What the test reads back from the live page: the key figures' exact values, which charts rendered,
# which sections said they were empty, and the numbers plotly holds for a few charts.
READ = """{
  kpis: Object.fromEntries(Array.from(document.querySelectorAll('[data-kpi]'))
    .map(e => [e.dataset.kpi, e.dataset.value])),
  kpiText: Object.fromEntries(Array.from(document.querySelectorAll('[data-kpi]'))
    .map(e => [e.dataset.kpi, e.textContent])),
  rendered: Array.from(document.querySelectorAll('.plotly-graph-div'))
    .filter(d => d.querySelector('.main-svg')).map(d => d.id),
  empty: Object.fromEntries(Array.from(document.querySelectorAll('[data-empty]'))
    .map(e => [e.dataset.empty, e.textContent])),
  traces: Object.fromEntries(Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => [d.id,
    d.data.map(t => ({name: t.name || null, x: Array.from(t.x || []), y: Array.from(t.y || []),
                      z: t.z ? t.z.flat().filter(v => v !== null).length : 0}))])),
  steps: Array.from(document.querySelectorAll('#table-runs-per-step tbody tr'))
    .map(r => Array.from(r.cells).map(c => c.textContent)),
  sources: Array.from(document.querySelectorAll('#table-source-freshness tbody tr'))
    .map(r => r.cells[0].textContent),
  scriptsWithSrc: Array.from(document.scripts).filter(s => s.src).length,
  stylesheetLinks: document.querySelectorAll('link[rel=stylesheet]').length
}"""


def _marts(published: Published) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for mart, entry in published.manifest["marts"].items():
        files = [str(published.version_dir / f["path"]) for f in entry["files"]]
        con.execute(f'create view "{mart}" as select * from read_parquet({files!r})')
    return con


def _sum(values: list[Any]) -> float:
    return sum(v for v in values if v is not None)


@pytest.fixture(scope="module")
def report_visit(published: Published, browser: Chromium, output_dir: Path) -> PageVisit:
    page = published.version_dir / published.manifest["attachments"]["report"]["path"]
    return browser.visit(
        page.as_uri(),
        ready=RENDERED,
        read=READ,
        screenshot=output_dir / "report-business.png",
        actions=[
            Action(
                "document.getElementById('page-pipeline').scrollIntoView()",
                "document.getElementById('page-pipeline').getBoundingClientRect().top < 5",
                output_dir / "report-pipeline.png",
            )
        ],
    )


def test_the_report_is_in_the_version_and_its_manifest(published: Published) -> None:
    entry = published.manifest["attachments"]["report"]
    page = published.version_dir / entry["path"]
    assert entry["path"] == "report.html" and page.is_file()
    assert entry["bytes"] == page.stat().st_size
    assert verify_version(published.version_dir) == []  # its sha256 included
    assert published.manifest["version"] in page.read_text()


def test_the_report_renders_from_a_file_with_no_error_and_no_network(
    report_visit: PageVisit, published: Published
) -> None:
    visit = report_visit
    assert visit.ready, f"the charts did not render; console: {visit.console_errors}"
    assert visit.console_errors == []
    assert visit.requests and visit.requests[0] == visit.url  # requests are counted: the page itself
    assert visit.external_requests == []
    assert (visit.values["scriptsWithSrc"], visit.values["stylesheetLinks"]) == (0, 0)  # all inline
    expected = {
        "fig-revenue-by-day-region",
        "fig-orders-by-day-region",
        "fig-cohort-retention",
        "fig-conversion-funnel",
        "fig-top-products",
        "fig-runs-per-step",
        "fig-source-freshness",
        "fig-dbt-tests",
        "fig-dbt-test-history",
    }
    assert expected <= set(visit.values["rendered"])
    # this world ran no stream and no run failed: those sections say so instead of drawing nothing
    assert visit.values["empty"] == {
        "failures": "no failed run recorded",
        "stream-latency": "the stream has not run (make stream)",
    }
    for shot in visit.screenshots:
        assert shot.read_bytes().startswith(PNG) and shot.stat().st_size > 10_000
    assert [s.name for s in visit.screenshots] == ["report-business.png", "report-pipeline.png"]


def test_business_numbers_on_the_page_equal_sql_over_the_marts(
    report_visit: PageVisit, published: Published
) -> None:
    kpis, traces = report_visit.values["kpis"], report_visit.values["traces"]
    with _marts(published) as con:
        kept, net, orders, paid, customers = con.execute(
            "select (select sum(kept_gross_amount_usd) from fct_daily_revenue), "
            "(select sum(net_paid_amount_usd) from fct_orders), (select count(*) from fct_orders), "
            "(select count(*) from fct_orders where paid_at is not null), "
            "(select count(*) from dim_customers)"
        ).fetchone()
        funnel = con.execute(
            "select sum(sessions), sum(product_view_sessions), sum(add_to_cart_sessions), "
            "sum(checkout_sessions), sum(order_sessions) from fct_funnel_daily"
        ).fetchone()
        cohort_cells = con.execute(
            "select count(retention_rate) from fct_customer_cohorts_monthly"
        ).fetchone()[0]
    assert Decimal(kpis["kept_revenue_usd"]) == kept > 0
    assert report_visit.values["kpiText"]["kept_revenue_usd"] == f"${kept:,.2f}"
    assert Decimal(kpis["net_paid_usd"]) == net
    assert (int(kpis["orders"]), int(kpis["paid_orders"]), int(kpis["customers"])) == (
        orders,
        paid,
        customers,
    )
    assert Decimal(kpis["conversion_rate"]).quantize(Decimal("1e-9")) == (
        Decimal(funnel[4]) / Decimal(funnel[0])
    ).quantize(Decimal("1e-9"))

    # the charts hold the same totals: revenue and orders summed over every region and day
    revenue = sum(_sum(t["y"]) for t in traces["fig-revenue-by-day-region"])
    assert revenue == pytest.approx(float(kept), abs=0.01)
    assert sum(_sum(t["y"]) for t in traces["fig-orders-by-day-region"]) == orders
    assert traces["fig-conversion-funnel"][0]["x"] == [int(v) for v in funnel]
    assert traces["fig-cohort-retention"][0]["z"] == cohort_cells > 0


def test_top_products_equal_the_same_question_asked_with_polars(
    report_visit: PageVisit, published: Published
) -> None:
    """Computed with another engine from the same files: lines of paid, not returned orders by product."""
    v = published.version_dir
    items = pl.read_parquet(v / "fct_order_items")
    orders = pl.read_parquet(v / "fct_orders").filter(
        pl.col("order_status").is_in(["paid", "shipped", "delivered"])
    )
    products = pl.read_parquet(v / "dim_products.parquet")
    by_product = (
        items.join(orders.select("order_id"), on="order_id")
        .join(products.select("product_id", "product_name", "category_name"), on="product_id", how="left")
        .group_by("product_name", "category_name")
        .agg(pl.col("line_amount_usd").sum().alias("usd"))
        .sort(["usd", "product_name"], descending=[True, False])
    )
    bar = report_visit.values["traces"]["fig-top-products"][0]
    shown = list(zip(reversed(bar["y"]), reversed(bar["x"]), strict=True))  # the chart lists largest last
    want = [
        (f"{r['product_name']} ({r['category_name']})", float(r["usd"]))
        for r in by_product.head(15).iter_rows(named=True)
    ]
    assert [s[0] for s in shown] == [w[0] for w in want]
    assert [s[1] for s in shown] == pytest.approx([w[1] for w in want], abs=0.005)
    # and every product together is the revenue kept of fct_daily_revenue (same lines, same orders)
    assert Decimal(str(by_product["usd"].sum())) == Decimal(report_visit.values["kpis"]["kept_revenue_usd"])


def test_pipeline_numbers_on_the_page_equal_the_ops_tables(
    report_visit: PageVisit, published: Published
) -> None:
    as_of = published.manifest["created_at"]
    with duckdb.connect(str(published.warehouse), read_only=True) as con:
        runs = dict(
            con.execute(
                "select step, count(*) from ops.runs where started_at <= ?::timestamptz group by step",
                [as_of],
            ).fetchall()
        )
        latest = con.execute(
            "select run_id from ops.dbt_results where resource_type in ('test', 'unit_test') "
            "order by generated_at desc limit 1"
        ).fetchone()[0]
        passed, failed = con.execute(
            "select count(*) filter (where status = 'pass'), "
            "count(*) filter (where status in ('fail', 'error')) "
            "from ops.dbt_results where run_id = ? and resource_type in ('test', 'unit_test')",
            [latest],
        ).fetchone()
        raw = [
            r[0]
            for r in con.execute(
                "select schema_name from duckdb_tables() where table_name = '_dlt_loads' order by 1"
            ).fetchall()
        ]
    shown = {row[0]: int(row[1]) for row in report_visit.values["steps"]}
    assert shown == runs and {"run", "extract", "dbt"} <= set(shown)
    kpis = report_visit.values["kpis"]
    assert int(kpis["flow_runs"]) == runs["run"] == 1  # the clean run; its own row is recorded at its start
    assert (int(kpis["dbt_tests_passed"]), int(kpis["dbt_tests_failed"])) == (passed, failed)
    # the dbt build's own record agrees: ops.dbt_results is a copy of its run_results.json
    results = json.loads((published.warehouse.parent.parent / "target" / "run_results.json").read_text())
    tests = [r for r in results["results"] if r["unique_id"].split(".")[0] in ("test", "unit_test")]
    assert passed == sum(r["status"] == "pass" for r in tests) > 200
    assert report_visit.values["sources"] == raw
