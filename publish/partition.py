"""How a partitioned mart is split into files, and the per-partition figures that verify it.

A mart's ``meta.publish_partition_by`` names a column; each file holds one value of its *partition key*:

- without a grain, the column's own value (``fct_orders`` by ``placed_month``, already a month);
- with ``meta.publish_partition_grain`` (``hour``, ``day``, ``month`` or ``year``), the column's value
  truncated to that grain, as text (``2026-12-08`` for ``day``). Why a grain and not a derived column: the
  real-time ``rt_events_per_minute`` holds every minute of history; one file per minute would be tens of
  thousands of files, one file for everything is rewritten whole every stream batch. Day files keep the
  rewrite to the days a batch touched, and the mart's columns (what readers see) stay as they are: the
  key exists only while writing (a hidden column of the COPY, not written into the files).

Both sides of every comparison use the same key expression, over the column cast to its Parquet read-back
type: the warehouse relation (what to write, what the files must hold) and the files read back. Per key
the publisher records the rows and the sum of the rows' hashes (``partition_checksum``); their sum over the
mart's files is the mart's content checksum (the same ``hash(row)`` summed, core/checksums.py), which lets a
publish verify the partitions it wrote and take the others' figures from the manifest they were verified
into.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from core.checksums import parquet_list, quote_ident, quote_literal
from transform.dbt_artifacts import MartSpec

# strftime formats of the grains: sortable text, safe in a file name
GRAINS = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}
# the hidden column a grained COPY partitions by (DuckDB does not write partition columns by default)
KEY_COLUMN = "__shop_partition_key"


class PartitionConfigError(ValueError):
    """The mart's partition meta names a column it does not have, or an unknown grain."""


def check(spec: MartSpec, columns: list[tuple[str, str]]) -> None:
    """Raise when ``spec``'s partitioning cannot apply to a relation of ``columns``."""
    names = [c for c, _ in columns]
    if spec.partition_by not in names:
        raise PartitionConfigError(
            f"{spec.unique_id}: publish_partition_by column {spec.partition_by!r} not in {names}"
        )
    if spec.partition_grain is None:
        return
    if spec.partition_grain not in GRAINS:
        raise PartitionConfigError(
            f"{spec.unique_id}: publish_partition_grain {spec.partition_grain!r} "
            f"is not one of {sorted(GRAINS)}"
        )
    dtype = dict(columns)[spec.partition_by].upper()
    if not (dtype.startswith("TIMESTAMP") or dtype == "DATE"):
        raise PartitionConfigError(
            f"{spec.unique_id}: publish_partition_grain needs a date or timestamp column, "
            f"{spec.partition_by!r} is {dtype}"
        )


def key_sql(spec: MartSpec, parquet_type: str) -> str:
    """The partition key of a file's row as text: the column (of its Parquet type) as text, or truncated
    to the grain and formatted."""
    assert spec.partition_by is not None
    column = f"cast({quote_ident(spec.partition_by)} as {parquet_type})"
    if spec.partition_grain is None:
        return f"cast({column} as varchar)"
    return f"strftime({column}, {quote_literal(GRAINS[spec.partition_grain])})"


def bucket_sql(spec: MartSpec) -> str:
    """What the warehouse relation's rows are grouped by: the column, or its grain (in the column's own
    type: a cast to ``timestamptz`` row by row costs more than the rest of the scan)."""
    assert spec.partition_by is not None
    column = quote_ident(spec.partition_by)
    return (
        column
        if spec.partition_grain is None
        else f"date_trunc({quote_literal(spec.partition_grain)}, {column})"
    )


def bucket_key_sql(spec: MartSpec, parquet_type: str) -> str:
    """The text key of a warehouse bucket (``bucket_sql``): the same text ``key_sql`` gives for its rows
    in the files (the warehouse keeps naive UTC timestamps, the session's zone is UTC)."""
    bucket = bucket_sql(spec)
    if spec.partition_grain is None:
        return f"cast(cast({bucket} as {parquet_type}) as varchar)"
    return f"strftime({bucket}, {quote_literal(GRAINS[spec.partition_grain])})"


def select_keys_sql(spec: MartSpec, parquet_type: str, keys: list[str]) -> str:
    """A filter on the warehouse relation for the rows of ``keys``. With a grain, ranges of the column
    (DuckDB skips the row groups outside them by their min/max) instead of formatting every row."""
    assert spec.partition_by is not None
    if spec.partition_grain is None:
        values = ", ".join(quote_literal(k) for k in keys)
        return f"{bucket_key_sql(spec, parquet_type)} in ({values})" if keys else "false"
    column = quote_ident(spec.partition_by)
    ranges = []
    for key in keys:
        start = datetime.strptime(key, GRAINS[spec.partition_grain]).isoformat(sep=" ")
        bound = f"timestamp {quote_literal(start)}"
        ranges.append(f"({column} >= {bound} and {column} < {bound} + interval 1 {spec.partition_grain})")
    return " or ".join(ranges) if ranges else "false"


def file_prefix(spec: MartSpec) -> str:
    """What a partition file's name starts with: ``placed_month`` or ``event_minute_day``."""
    assert spec.partition_by is not None
    grain = spec.partition_grain
    return spec.partition_by if grain is None else f"{spec.partition_by}_{grain}"


def hash_types(file_columns: list[tuple[str, str]], columns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The types to cast the warehouse columns to before hashing a row, so the hash equals the files'
    (``file_columns``: the Parquet read-back types). A naive ``TIMESTAMP`` written as ``timestamptz`` is
    hashed as it is: the same microseconds (UTC), the same hash, without a time-zone cast per row (a
    wrong assumption here could only fail the comparison, never pass a difference)."""
    source = dict(columns)
    return [
        (
            name,
            "TIMESTAMP" if ftype == "TIMESTAMP WITH TIME ZONE" and source.get(name) == "TIMESTAMP" else ftype,
        )
        for name, ftype in file_columns
    ]


def row_hash(columns: list[tuple[str, str]]) -> str:
    """The per-row hash behind ``partition_checksum``: the same expression on warehouse and file rows
    (equal to the content checksum's ``hash`` of the row, core/checksums.py)."""
    return "hash(row(" + ", ".join(f"cast({quote_ident(n)} as {t})" for n, t in columns) + "))"


@dataclass(frozen=True)
class Group:
    """One partition key's rows in the warehouse: count, checksum, newest high-water value."""

    rows: int
    checksum: int
    high_water: Any = None


def warehouse_groups(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    spec: MartSpec,
    columns: list[tuple[str, str]],
    file_columns: list[tuple[str, str]],
) -> dict[str | None, Group]:
    """Per partition key of the relation (``columns``: its own): rows, checksum and newest value of the
    high-water column (of its Parquet type), in one scan."""
    types = dict(file_columns)
    hwm = spec.high_water_mark
    newest = f"cast(max({quote_ident(hwm)}) as {types[hwm]})" if hwm and hwm in types else "null"
    found = con.execute(
        f"select {bucket_key_sql(spec, types[spec.partition_by])}, count(*), "  # type: ignore[index]
        f"coalesce(sum({row_hash(hash_types(file_columns, columns))}::hugeint), 0)::varchar, {newest} "
        f"from {relation} group by {bucket_sql(spec)}"
    ).fetchall()
    return {key: Group(rows, int(total), high) for key, rows, total, high in found}


@dataclass(frozen=True)
class FileFigures:
    """What one written file holds, read back from it."""

    rows: int
    keys: int  # distinct partition keys: must be 1 (0 for the empty file of an empty mart)
    key: str | None
    checksum: int


def file_figures(
    con: duckdb.DuckDBPyConnection, files: list[Path], spec: MartSpec, file_columns: list[tuple[str, str]]
) -> dict[str, FileFigures]:
    """Per file (by its path as DuckDB reports it): rows, distinct keys, the key and the checksum, read
    from the files' rows (not their names), in one pass over them. A file without rows is absent."""
    key = key_sql(spec, dict(file_columns)[spec.partition_by])  # type: ignore[index]
    found = con.execute(
        f"select filename, count(*), count(distinct {key}), min({key}), "
        f"coalesce(sum({row_hash(file_columns)}::hugeint), 0)::varchar "
        f"from read_parquet({parquet_list(files)}, filename = true, hive_partitioning = false) "
        "group by filename"
    ).fetchall()
    return {name: FileFigures(rows, keys, value, int(total)) for name, rows, keys, value, total in found}
