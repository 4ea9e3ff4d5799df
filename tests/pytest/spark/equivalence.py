"""The comparison behind "the marts built on Spark equal DuckDB's": per mart, the row count, the set of
keys, every money column (every decimal amount, price and FX rate) summed exactly - to the cent and
beyond - and every row, column by column, joined on the key.

No tolerance anywhere: values rounded from a division (hours between two timestamps, shares of counts)
are rounded by macros/safe_ratio.sql's ``rounded_ratio``, which gives the same double on both engines
(a plain ``round(a / b, n)`` did not at exact ties: 162 s was 0.04 h on DuckDB, 0.05 h on Spark).

Both sides are read through DuckDB: the DuckDB build from its warehouse or its published Parquet, the
Spark build from Spark's own Parquet (transform/spark/mirror.py) or from its published version.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

# The key of every published mart. A new mart fails the check until its key is added here.
KEYS: dict[str, tuple[str, ...]] = {
    "dim_customers": ("customer_id",),
    "dim_products": ("product_id",),
    "fct_orders": ("order_id",),
    "fct_order_items": ("order_item_id",),
    "fct_payments": ("payment_id",),
    "fct_daily_revenue": ("revenue_date", "country_code", "region", "category_name"),
    "fct_customer_cohorts_monthly": ("cohort_month", "activity_month"),
    "fct_funnel_daily": ("session_date",),
    "rt_events_per_minute": ("event_minute", "event_type"),
    "rt_funnel_live": ("session_hour",),
    "rt_orders_today": ("order_id",),
}
# decimal columns that are shares of counts, not money (compared row by row like every column, not summed)
SHARES = {
    "retention_rate",
    "view_rate",
    "view_to_cart_rate",
    "cart_to_checkout_rate",
    "checkout_to_order_rate",
    "conversion_rate",
}
MAX_SHOWN = 3


def version_views(con: duckdb.DuckDBPyConnection, version: Path, schema: str) -> list[str]:
    """A view ``<schema>.<mart>`` per mart of a published version folder; the marts' names."""
    con.execute(f"create schema if not exists {schema}")
    names = []
    for entry in sorted(version.iterdir()):
        if entry.suffix == ".parquet":
            source = f"read_parquet('{entry}')"
        elif entry.is_dir() and any(entry.glob("*.parquet")):
            source = f"read_parquet('{entry}/*.parquet')"
        else:
            continue
        name = entry.name.removesuffix(".parquet")
        con.execute(f'create view {schema}."{name}" as select * from {source}')
        names.append(name)
    return names


def _columns(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"describe select * from {relation}").fetchall()}


def differences(con: duckdb.DuckDBPyConnection, mart: str, duck: str, spark: str) -> list[str]:
    """Everything that differs between ``duck`` and ``spark`` (two relations of one mart) in ``con``."""
    if mart not in KEYS:
        return [f"{mart}: no key known to the equivalence check (add it to KEYS)"]
    problems: list[str] = []
    duck_cols, spark_cols = _columns(con, duck), _columns(con, spark)
    if list(duck_cols) != list(spark_cols):
        return [f"{mart}: columns differ: duckdb {list(duck_cols)}, spark {list(spark_cols)}"]
    (duck_rows,), (spark_rows,) = (con.execute(f"select count(*) from {r}").fetchone() for r in (duck, spark))
    if duck_rows != spark_rows:
        problems.append(f"{mart}: {duck_rows} rows on duckdb, {spark_rows} on spark")
    key = ", ".join(KEYS[mart])
    for a, b, label in ((duck, spark, "only on duckdb"), (spark, duck, "only on spark")):
        extra = con.execute(
            f"select {key} from (select {key} from {a} except select {key} from {b}) "
            f"order by all limit {MAX_SHOWN}"
        ).fetchall()
        if extra:
            problems.append(f"{mart}: keys {label}: {extra}")
    for column in money_columns(con, duck):
        (d,), (s,) = (con.execute(f'select sum("{column}") from {r}').fetchone() for r in (duck, spark))
        if d != s:
            problems.append(f"{mart}.{column}: sum {d} on duckdb, {s} on spark")
    # every row, column by column, joined on the key (the key sets are compared above)
    for column in duck_cols:
        if column in KEYS[mart]:
            continue
        found = con.execute(
            f'select {key}, d."{column}", s."{column}" from {duck} as d join {spark} as s using ({key}) '
            f'where d."{column}" is distinct from s."{column}" order by all limit {MAX_SHOWN}'
        ).fetchall()
        if found:
            problems.append(f"{mart}.{column}: differs, e.g. (key, duckdb, spark) {found}")
    return problems


def money_columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    """The money columns of ``relation``: every decimal (amounts, prices, FX rates) but the shares."""
    columns = _columns(con, relation)
    return [c for c, t in columns.items() if t.upper().startswith("DECIMAL") and c not in SHARES]
