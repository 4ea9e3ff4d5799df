"""The business page: revenue and orders by day and region, cohort retention, the funnel, top products.

Every figure is one DuckDB query over the version's marts (views ``marts.<name>`` on its Parquet
files); the queries use the marts' documented definitions, so a number here equals the same SQL a
consumer runs on the exports. Revenue is ``kept_gross_amount_usd`` (gross line value of paid orders
not returned: statuses paid, shipped, delivered), as in ``fct_daily_revenue``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import duckdb
import plotly.graph_objects as go

from report.page import Kpi, Page, Section, Table

KEPT_STATUSES = ("paid", "shipped", "delivered")  # fct_daily_revenue's "kept": paid and not returned
TOP_PRODUCTS = 15
LAYOUT = {"margin": {"l": 60, "r": 20, "t": 30, "b": 50}, "height": 380, "template": "plotly_white"}

KPI_SQL = """
select
    (select sum(kept_gross_amount_usd) from marts.fct_daily_revenue) as kept_revenue_usd,
    (select sum(net_paid_amount_usd) from marts.fct_orders) as net_paid_usd,
    (select count(*) from marts.fct_orders) as orders,
    (select count(paid_at) from marts.fct_orders) as paid_orders,
    (select count(*) from marts.dim_customers) as customers,
    (select sum(order_sessions) / nullif(sum(sessions), 0) from marts.fct_funnel_daily) as conversion_rate,
    (select min(placed_date) from marts.fct_orders) as first_day,
    (select max(placed_date) from marts.fct_orders) as last_day
"""

REVENUE_SQL = """
select revenue_date as day, region, sum(kept_gross_amount_usd) as kept_revenue_usd
from marts.fct_daily_revenue
group by all
order by day, region
"""

# fct_orders has the shipping country, not the region: the country -> region pairs come from the marts
# that carry both (the same seed, country_regions); a country in neither is "Unknown".
ORDERS_SQL = """
with regions as (
    select country_code, max(region) as region
    from (
        select country_code, region from marts.fct_daily_revenue
        union
        select country_code, region from marts.dim_customers
    )
    where country_code is not null
    group by country_code
)

select
    o.placed_date as day,
    coalesce(r.region, 'Unknown') as region,
    count(*) as orders
from marts.fct_orders as o
left join regions as r on o.shipping_country_code = r.country_code
group by all
order by day, region
"""

COHORT_SQL = """
select cohort_month, months_since_first_order, retention_rate, cohort_size, active_customers
from marts.fct_customer_cohorts_monthly
order by cohort_month, months_since_first_order
"""

FUNNEL_SQL = """
select
    sum(sessions) as sessions,
    sum(product_view_sessions) as product_view_sessions,
    sum(add_to_cart_sessions) as add_to_cart_sessions,
    sum(checkout_sessions) as checkout_sessions,
    sum(order_sessions) as order_sessions
from marts.fct_funnel_daily
"""

TOP_PRODUCTS_SQL = f"""
select
    coalesce(p.product_name, 'product ' || i.product_id) as product,
    coalesce(p.category_name, 'Unknown') as category,
    sum(i.line_amount_usd) as kept_revenue_usd,
    sum(i.quantity) as units,
    count(distinct i.order_id) as orders
from marts.fct_order_items as i
inner join marts.fct_orders as o on i.order_id = o.order_id
left join marts.dim_products as p on i.product_id = p.product_id
where o.order_status in {KEPT_STATUSES}
group by all
order by kept_revenue_usd desc, product
limit {TOP_PRODUCTS}
"""


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return con.execute(sql).fetchall()


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _by_region(rows: list[tuple[Any, ...]], title: str, y_title: str, stacked: bool) -> go.Figure:
    """One trace per region over the days (``rows``: day, region, value)."""
    series: dict[str, tuple[list[str], list[float | None]]] = {}
    for day, region, value in rows:
        xs, ys = series.setdefault(region, ([], []))
        xs.append(day.isoformat())
        ys.append(_num(value))
    fig = go.Figure()
    for region, (xs, ys) in sorted(series.items()):
        fig.add_trace(
            go.Scatter(x=xs, y=ys, name=region, mode="lines", stackgroup="one" if stacked else None)
        )
    fig.update_layout(**LAYOUT, title=None, yaxis_title=y_title, legend_title_text="region", hovermode="x")
    return fig


def kpis(con: duckdb.DuckDBPyConnection) -> list[Kpi]:
    cur = con.execute(KPI_SQL)
    k = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
    span = f"{k['first_day']} to {k['last_day']}" if k["first_day"] else "no orders"
    return [
        Kpi(
            "kept_revenue_usd",
            "Revenue kept (USD)",
            k["kept_revenue_usd"],
            "usd",
            "paid, not returned; gross",
        ),
        Kpi("net_paid_usd", "Net paid (USD)", k["net_paid_usd"], "usd", "payments minus refunds"),
        Kpi("orders", "Orders", k["orders"], "int", span),
        Kpi("paid_orders", "Paid orders", k["paid_orders"], "int"),
        Kpi("customers", "Customers", k["customers"], "int"),
        Kpi("conversion_rate", "Session conversion", k["conversion_rate"], "pct", "sessions with an order"),
    ]


def page(con: duckdb.DuckDBPyConnection) -> Page:
    """The business page of the version on ``con`` (views ``marts.*``)."""
    sections = []

    revenue = _rows(con, REVENUE_SQL)
    sections.append(
        Section(
            "revenue-by-day-region",
            "Revenue by day and region",
            "Gross line value of paid orders not returned (kept_gross_amount_usd), USD, by placement day "
            "and the shipping country's region; stacked.",
            [REVENUE_SQL],
            figure=_by_region(revenue, "revenue", "USD", stacked=True) if revenue else None,
            empty=None if revenue else "no paid orders in this version",
        )
    )

    orders = _rows(con, ORDERS_SQL)
    sections.append(
        Section(
            "orders-by-day-region",
            "Orders by day and region",
            "Orders placed per day (every status), by the shipping country's region; stacked.",
            [ORDERS_SQL],
            figure=_by_region(orders, "orders", "orders", stacked=True) if orders else None,
            empty=None if orders else "no orders in this version",
        )
    )

    cohorts = _rows(con, COHORT_SQL)
    sections.append(_cohort_section(cohorts))

    funnel = con.execute(FUNNEL_SQL).fetchone()
    sections.append(_funnel_section(funnel))

    top = _rows(con, TOP_PRODUCTS_SQL)
    sections.append(_top_products_section(top))

    return Page(
        "business",
        "Business",
        "What the shop sold and to whom: every figure is a query over this version's Parquet exports.",
        kpis(con),
        sections,
    )


def _cohort_section(rows: list[tuple[Any, ...]]) -> Section:
    months = sorted({r[0] for r in rows})
    offsets = sorted({r[1] for r in rows})
    cell = {(r[0], r[1]): r for r in rows}
    z = [[_num(cell[(m, o)][2]) if (m, o) in cell else None for o in offsets] for m in months]
    fig = None
    if rows:
        fig = go.Figure(
            go.Heatmap(
                x=offsets,
                y=[m.strftime("%Y-%m") for m in months],
                z=z,
                zmin=0,
                zmax=1,
                colorscale="Blues",
                colorbar={"title": {"text": "retained"}, "tickformat": ".0%"},
                hovertemplate="cohort %{y}, month %{x}: %{z:.1%}<extra></extra>",
            )
        )
        fig.update_layout(**{**LAYOUT, "height": max(380, 14 * len(months) + 120)})
        fig.update_layout(xaxis_title="months since first order", yaxis_title="cohort (first order month)")
        fig.update_yaxes(autorange="reversed", type="category")
    return Section(
        "cohort-retention",
        "Cohort retention",
        "Share of each monthly acquisition cohort (month of the first non-cancelled order) active in each "
        "later month (retention_rate of fct_customer_cohorts_monthly).",
        [COHORT_SQL],
        figure=fig,
        empty=None if rows else "no cohorts in this version",
    )


FUNNEL_STEPS = ("sessions", "viewed a product", "added to cart", "checked out", "ordered")


def _funnel_section(row: tuple[Any, ...] | None) -> Section:
    values = [int(v) if v is not None else 0 for v in (row or ())]
    has = bool(values and values[0])
    fig = None
    if has:
        fig = go.Figure(go.Funnel(y=list(FUNNEL_STEPS), x=values, textinfo="value+percent initial"))
        fig.update_layout(**LAYOUT)
    return Section(
        "conversion-funnel",
        "Conversion funnel",
        "Sessions reaching each step, summed over every day of fct_funnel_daily (a session counts once "
        "per step).",
        [FUNNEL_SQL],
        figure=fig,
        table=Table(list(FUNNEL_STEPS), [values]) if has else None,
        empty=None if has else "no sessions in this version",
    )


def _top_products_section(rows: list[tuple[Any, ...]]) -> Section:
    fig = None
    if rows:
        ordered = list(reversed(rows))  # largest on top of a horizontal bar chart
        fig = go.Figure(
            go.Bar(
                x=[_num(r[2]) for r in ordered],
                y=[f"{r[0]} ({r[1]})" for r in ordered],
                orientation="h",
                hovertemplate="%{y}: $%{x:,.2f}<extra></extra>",
            )
        )
        fig.update_layout(
            **{**LAYOUT, "height": 60 + 26 * len(rows), "margin": {**LAYOUT["margin"], "l": 260}}
        )
        fig.update_layout(xaxis_title="USD kept")
    table = Table(
        ["product", "category", "revenue kept (USD)", "units", "orders"],
        [[r[0], r[1], f"{Decimal(r[2]):,.2f}", f"{int(r[3]):,}", f"{int(r[4]):,}"] for r in rows],
    )
    return Section(
        "top-products",
        f"Top {TOP_PRODUCTS} products",
        "Line value (USD) of paid orders not returned, by product, with units and orders.",
        [TOP_PRODUCTS_SQL],
        figure=fig,
        table=table if rows else None,
        empty=None if rows else "no paid orders in this version",
    )
