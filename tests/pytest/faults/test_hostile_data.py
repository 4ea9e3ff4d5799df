"""Hostile data written straight into a service's SQLite ``doc`` (through ``services.store``): values
must be stored verbatim in raw and round-trip through the published Parquet unchanged; field names must
never collide silently.

Values: SQL-looking text, both quote kinds, NUL, emoji, right-to-left text and a huge (1 MiB) value, as
product names — ``dim_products.product_name`` is published, so each one travels source → raw → dbt →
Parquet. Names: fields that differ only by case, non-ASCII names and a deeply nested object on
customers; either each lands in its own column with its value, or the load fails naming the field.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from services.launcher import Fleet
from services.store.db import connect, transaction
from services.store.records import get_doc, put_docs
from tests.pytest.support.fleets import new_fleet
from tests.pytest.support.workspace import flow, run
from tests.pytest.support.world import SCALE

HOSTILE_NAMES = {
    1: "'; DROP TABLE raw_catalog.products; --",
    2: "Robert'); DELETE FROM marts.dim_products WHERE ('1'='1",
    3: "double \"quoted\" and 'single' and `back` \\ slash",
    4: "nul\x00inside",
    5: "emoji \U0001f6d2\U0001f525\U0001f469\U0001f3fd\u200d\U0001f4bb and math \U0001d518",
    6: "\u202eright-to-left override \u05de\u05d5\u05e6\u05e8 \u0639\u0631\u0628\u064a",
    7: "huge " + "x" * (1 << 20),
}


def _hostile_fleet(data_dir: Path, run_dir: Path) -> Fleet:
    fl = new_fleet(run_dir, data_dir, scale=SCALE, seed=42)
    fl.start()
    return fl


@pytest.fixture
def hostile_values_fleet(data_copy: Path, tmp_path: Path) -> Iterator[Fleet]:
    con = connect(data_copy, "catalog")
    with transaction(con):
        docs = []
        for product_id, name in HOSTILE_NAMES.items():
            doc = get_doc(con, "products", product_id)
            assert doc is not None
            doc["name"] = name
            docs.append(doc)
        put_docs(con, "products", docs)
    con.close()
    fl = _hostile_fleet(data_copy, tmp_path / "hostile-run")
    yield fl
    fl.stop()


@pytest.mark.slow
def test_hostile_values_round_trip_verbatim(hostile_values_fleet: Fleet, workspace) -> None:
    ws = workspace("hostile-values", fleet_env=hostile_values_fleet.env())
    out = flow(ws)
    assert out.returncode == 0, out.describe()
    with duckdb.connect(str(ws.warehouse), read_only=True) as con:
        raw = dict(
            con.execute(
                "select product_id, name from raw_catalog.products where product_id <= ?",
                [len(HOSTILE_NAMES)],
            ).fetchall()
        )
        (tables,) = con.execute("select count(*) from raw_catalog.products").fetchone()
    assert tables > len(HOSTILE_NAMES), "the SQL-looking value was executed somewhere"
    for product_id, name in HOSTILE_NAMES.items():
        assert raw[product_id] == name, f"raw value of product {product_id} changed: {raw[product_id][:80]!r}"
    version = ws.exports / os.readlink(ws.exports / "current")
    published = dict(
        duckdb.sql(
            f"select product_id, product_name from read_parquet('{version}/dim_products.parquet') "
            f"where product_id <= {len(HOSTILE_NAMES)}"
        ).fetchall()
    )
    for product_id, name in HOSTILE_NAMES.items():
        assert published[product_id] == name, f"Parquet value of product {product_id} changed"


def _deep(levels: int) -> dict:
    deep: dict = {"leaf": "bottom"}
    for level in range(levels):
        deep = {f"level_{level}": deep}
    return deep


NAME_CASES = {
    "case-collision": ({"Promo": "upper", "promo": "lower"}, ["upper", "lower"], "promo"),
    "non-ascii-and-deep": (
        {"名前": "non-ascii name", "deep": _deep(40)},
        ["non-ascii name", "bottom"],
        "名前",
    ),
}


@pytest.fixture(params=sorted(NAME_CASES))
def hostile_names_fleet(request: pytest.FixtureRequest, data_copy: Path, tmp_path: Path) -> Iterator[tuple]:
    extra, expected_values, name_in_error = NAME_CASES[request.param]
    con = connect(data_copy, "customers")
    with transaction(con):
        doc = get_doc(con, "customers", 1)
        assert doc is not None
        doc.update(extra)
        put_docs(con, "customers", [doc])
    con.close()
    fl = _hostile_fleet(data_copy, tmp_path / "names-run")
    yield fl, expected_values, name_in_error
    fl.stop()


def test_colliding_and_non_ascii_names_never_collide_silently(hostile_names_fleet: tuple, workspace) -> None:
    fl, expected_values, name_in_error = hostile_names_fleet
    ws = workspace("hostile-names", fleet_env=fl.env())
    out = run(ws, ["-m", "extract", "customers"])
    if out.returncode != 0:  # refusing is fine, as long as it names the field
        assert "customers: FAILED" in out.output, out.describe()
        assert name_in_error in out.output.lower(), out.describe()
        return
    with duckdb.connect(str(ws.warehouse), read_only=True) as con:
        cols = [
            r[0]
            for r in con.execute(
                "select column_name from information_schema.columns "
                "where table_schema = 'raw_customers' and table_name = 'customers'"
            ).fetchall()
        ]
        row = con.execute("select * from raw_customers.customers where customer_id = 1").fetchone()
        values = dict(zip(cols, row, strict=True))
    stored = [v for v in values.values() if isinstance(v, str)]
    for value in expected_values:
        assert value in stored, f"{value!r} was lost or overwritten silently; columns {cols}"
