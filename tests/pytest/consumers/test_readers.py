"""Every reader a consumer is likely to use opens every published mart the documented way
(docs/publishing.md, "Reading with each library"), and gets the same data: the manifest's row count,
the warehouse's money sums to the cent, and timestamps that come back zoned UTC.

Readers: pyarrow (``dataset(partitioning="hive")`` and ``parquet.read_table``), pandas (default and
pyarrow backends), polars and DuckDB. A partitioned mart is read as its folder, a whole one as its
file. The expected sums come from the warehouse the marts were published from, not from the files.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tests.pytest.support.world import Published


def _target(published: Published, mart: str) -> Path:
    """What a consumer points a reader at: the mart's folder when partitioned, else its one file."""
    entry = published.manifest["marts"][mart]
    return published.version_dir / (mart if entry["partition_by"] else entry["files"][0]["path"])


def _money_columns(published: Published, mart: str) -> list[str]:
    return [
        c["name"]
        for c in published.manifest["marts"][mart]["schema"]
        if c["type"].startswith("DECIMAL") and ("usd" in c["name"] or "amount" in c["name"])
    ]


def _timestamp_columns(published: Published, mart: str) -> list[str]:
    return [
        c["name"] for c in published.manifest["marts"][mart]["schema"] if c["type"].startswith("TIMESTAMP")
    ]


# Each reader returns (rows, {money column: exact sum}, {timestamp column: (is UTC-zoned, a sample)}).
Result = tuple[int, dict[str, Decimal], dict[str, tuple[bool, Any]]]


def _from_arrow(table: pa.Table, money: list[str], stamps: list[str]) -> Result:
    sums = {c: pc.sum(table.column(c)).as_py() or Decimal(0) for c in money}
    zones = {}
    for c in stamps:
        t = table.schema.field(c).type
        zones[c] = (pa.types.is_timestamp(t) and t.tz in ("UTC", "+00:00"), pc.min(table.column(c)).as_py())
    return table.num_rows, sums, zones


def read_pyarrow_dataset(path: Path, money: list[str], stamps: list[str]) -> Result:
    return _from_arrow(ds.dataset(path, partitioning="hive").to_table(), money, stamps)


def read_pyarrow_table(path: Path, money: list[str], stamps: list[str]) -> Result:
    return _from_arrow(pq.read_table(path), money, stamps)


def _from_pandas(df: pd.DataFrame, money: list[str], stamps: list[str]) -> Result:
    sums = {c: Decimal(str(df[c].dropna().sum())) if len(df) else Decimal(0) for c in money}
    zones = {}
    for c in stamps:
        tz = getattr(df[c].dtype, "tz", None) or getattr(
            getattr(df[c].dtype, "pyarrow_dtype", None), "tz", None
        )
        zones[c] = (str(tz) == "UTC", df[c].min() if len(df) else None)
    return len(df), sums, zones


def read_pandas_default(path: Path, money: list[str], stamps: list[str]) -> Result:
    return _from_pandas(pd.read_parquet(path), money, stamps)


def read_pandas_pyarrow(path: Path, money: list[str], stamps: list[str]) -> Result:
    return _from_pandas(pd.read_parquet(path, dtype_backend="pyarrow"), money, stamps)


def read_polars(path: Path, money: list[str], stamps: list[str]) -> Result:
    df = pl.read_parquet(path)
    sums = {c: Decimal(str(df[c].sum())) if df.height else Decimal(0) for c in money}
    zones = {c: (df.schema[c] == pl.Datetime("us", "UTC"), df[c].min()) for c in stamps}
    return df.height, sums, zones


def read_duckdb(path: Path, money: list[str], stamps: list[str]) -> Result:
    source = f"'{path}/*.parquet'" if path.is_dir() else f"'{path}'"
    with duckdb.connect() as con:
        rel = f"read_parquet({source})"
        types = dict(
            con.execute(f"select column_name, column_type from (describe select * from {rel})").fetchall()
        )
        parts = ["count(*)", *[f'sum("{c}")' for c in money], *[f'min("{c}")' for c in stamps]]
        row = con.execute(f"select {', '.join(parts)} from {rel}").fetchone()
    sums = {c: row[1 + i] or Decimal(0) for i, c in enumerate(money)}
    zones = {
        c: (types[c] == "TIMESTAMP WITH TIME ZONE", row[1 + len(money) + i]) for i, c in enumerate(stamps)
    }
    return row[0], sums, zones


READERS: dict[str, Callable[[Path, list[str], list[str]], Result]] = {
    "pyarrow.dataset(hive)": read_pyarrow_dataset,
    "pyarrow.parquet.read_table": read_pyarrow_table,
    "pandas": read_pandas_default,
    "pandas[pyarrow]": read_pandas_pyarrow,
    "polars": read_polars,
    "duckdb": read_duckdb,
}


@pytest.fixture(scope="module")
def warehouse_sums(published: Published) -> dict[str, tuple[int, dict[str, Decimal]]]:
    """Rows and money sums per mart, from the warehouse the version was published from."""
    out = {}
    with duckdb.connect(str(published.warehouse), read_only=True) as con:
        for mart, entry in published.manifest["marts"].items():
            money = _money_columns(published, mart)
            parts = ["count(*)", *[f'coalesce(sum("{c}"), 0)' for c in money]]
            row = con.execute(f"select {', '.join(parts)} from {entry['relation']}").fetchone()
            out[mart] = (row[0], dict(zip(money, row[1:], strict=True)))
    return out


def test_the_matrix_covers_whole_and_partitioned_marts_with_money_and_timestamps(
    published: Published,
) -> None:
    """The cases below are worth something only if the version has both kinds of mart, money and
    timestamps in them, and rows to read."""
    marts = published.manifest["marts"]
    partitioned = [m for m, e in marts.items() if e["partition_by"]]
    assert {"fct_orders", "fct_order_items", "fct_payments"} <= set(partitioned)
    assert len(marts) - len(partitioned) >= 5
    assert all(len(marts[m]["files"]) > 1 for m in partitioned)
    assert _money_columns(published, "fct_orders") and _timestamp_columns(published, "fct_orders")
    assert marts["fct_orders"]["rows"] > 100


@pytest.mark.parametrize("reader", sorted(READERS))
def test_every_reader_opens_every_mart_with_the_same_rows_money_and_utc_times(
    reader: str, published: Published, warehouse_sums: dict[str, tuple[int, dict[str, Decimal]]]
) -> None:
    problems = []
    checked_stamps = 0
    for mart, entry in sorted(published.manifest["marts"].items()):
        money, stamps = _money_columns(published, mart), _timestamp_columns(published, mart)
        try:
            rows, sums, zones = READERS[reader](_target(published, mart), money, stamps)
        except Exception as exc:  # a reader that cannot open the export is the failure this test is for
            problems.append(f"{mart}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
            continue
        want_rows, want_sums = warehouse_sums[mart]
        if not rows == entry["rows"] == want_rows:
            problems.append(f"{mart}: {rows} rows read, manifest {entry['rows']}, warehouse {want_rows}")
        for col in money:
            if Decimal(sums[col]) != Decimal(want_sums[col]):
                problems.append(f"{mart}.{col}: sum {sums[col]}, warehouse {want_sums[col]}")
        for col, (is_utc, sample) in zones.items():
            if not is_utc:
                problems.append(f"{mart}.{col}: not read as a UTC-zoned timestamp")
            if sample is not None:
                checked_stamps += 1
                offset = sample.utcoffset() if isinstance(sample, dt.datetime | pd.Timestamp) else None
                if offset != dt.timedelta(0):
                    problems.append(f"{mart}.{col}: value {sample!r} has no UTC offset")
    assert not problems, f"{reader}:\n  " + "\n  ".join(problems)
    assert checked_stamps > 10  # timestamps were actually read, not only typed


def test_files_name_their_mart_and_version_and_the_manifest_its_high_water_marks(
    published: Published,
) -> None:
    manifest = published.manifest
    assert manifest["format_version"] == 2
    assert manifest["publisher"]["git_revision"]
    for mart, entry in manifest["marts"].items():
        for f in entry["files"]:
            meta = pq.read_metadata(published.version_dir / f["path"]).metadata
            assert meta[b"shop_elt.mart"] == mart.encode(), f["path"]
            assert meta[b"shop_elt.version"] == manifest["version"].encode(), f["path"]
        mark = entry["high_water_mark"]
        assert mark is not None, f"{mart}: no publish_high_water_mark meta"
        with duckdb.connect() as con:
            con.execute("set TimeZone = 'UTC'")
            files = [str(published.version_dir / f["path"]) for f in entry["files"]]
            (newest,) = con.execute(
                f'select max("{mark["column"]}") from read_parquet(?)', [files]
            ).fetchone()
        shown = None if newest is None else newest.isoformat()
        assert mark["value"] == shown, mart
