"""How a partitioned mart is split into files, and the per-partition figures that verify it.

A mart's ``meta.publish_partition_by`` names a column; each file holds one value of its *partition key*:

- without a grain, the column's own value (``fct_orders`` by ``placed_month``, already a month);
- with ``meta.publish_partition_grain`` (``hour``, ``day``, ``month`` or ``year``), the column's value
  truncated to that grain, as text (``2026-12-08`` for ``day``). Why a grain and not a derived column: the
  real-time ``rt_events_per_minute`` holds every minute of history; one file per minute would be tens of
  thousands of files, one file for everything is rewritten whole every stream batch. Day files keep the
  rewrite to the days a batch touched, and the mart's columns (what readers see) stay as they are: the
  key exists only while writing (a hidden column of the COPY, not written into the files);
- with ``meta.publish_partition_rollup`` too (a coarser grain, ``month`` for the events), rows before the
  current rollup period are keyed by the rollup (``2026-11``): two years of history are two dozen month
  files instead of 730 day files (each file costs a full publish, a stream batch's links and a reader
  about the same whatever its rows), while the period being written to is still a file per day. The cut
  is fixed once per publish; after a month turns, its day files give way to one month file.

Both sides of every comparison use the same key expression: over the column cast to its Parquet read-back
type for the files, over the column's own type for the warehouse (grouped by its bucket, formatted per
group). Per key
the publisher records the rows and the sum of the rows' hashes (``partition_checksum``); their sum over the
mart's files is the mart's content checksum (the same ``hash(row)`` summed, core/checksums.py), which lets a
publish verify the partitions it wrote and take the others' figures from the manifest they were verified
into.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
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
    """The mart's partition meta names a column it does not have, an unknown grain or a finer rollup."""


ORDER = ["hour", "day", "month", "year"]


def check(spec: MartSpec, columns: list[tuple[str, str]]) -> None:
    """Raise when ``spec``'s partitioning cannot apply to a relation of ``columns``."""
    names = [c for c, _ in columns]
    if spec.partition_by not in names:
        raise PartitionConfigError(
            f"{spec.unique_id}: publish_partition_by column {spec.partition_by!r} not in {names}"
        )
    grain, rollup = spec.partition_grain, spec.partition_rollup
    if grain is None and rollup is None:
        return
    if grain not in GRAINS:
        raise PartitionConfigError(
            f"{spec.unique_id}: publish_partition_grain {grain!r} is not one of {sorted(GRAINS)}"
        )
    if rollup is not None and (rollup not in GRAINS or ORDER.index(rollup) <= ORDER.index(grain)):
        raise PartitionConfigError(
            f"{spec.unique_id}: publish_partition_rollup {rollup!r} must be a grain coarser than {grain!r} "
            f"(one of {ORDER[ORDER.index(grain) + 1 :]})"
        )
    dtype = dict(columns)[spec.partition_by].upper()
    if not (dtype.startswith("TIMESTAMP") or dtype == "DATE"):
        raise PartitionConfigError(
            f"{spec.unique_id}: publish_partition_grain needs a date or timestamp column, "
            f"{spec.partition_by!r} is {dtype}"
        )


def _truncate(moment: datetime, grain: str) -> datetime:
    moment = moment.replace(minute=0, second=0, microsecond=0)
    if grain == "hour":
        return moment
    moment = moment.replace(hour=0)
    if grain == "day":
        return moment
    moment = moment.replace(day=1)
    return moment if grain == "month" else moment.replace(month=1)


@dataclass(frozen=True)
class Scheme:
    """How one publish splits a partitioned mart into files: by the column's value, by its grain, or by
    its grain from ``cut`` on and its rollup before (``cut``: the start of the current rollup period,
    UTC, fixed for the whole publish so the warehouse and the files are split alike)."""

    column: str
    grain: str | None = None
    rollup: str | None = None
    cut: datetime | None = None  # naive UTC

    @classmethod
    def of(cls, spec: MartSpec, now: datetime) -> Scheme:
        assert spec.partition_by is not None
        rollup = spec.partition_rollup if spec.partition_grain else None
        cut = _truncate(now.astimezone(UTC).replace(tzinfo=None), rollup) if rollup else None
        return cls(spec.partition_by, spec.partition_grain, rollup, cut)

    def _cut_sql(self) -> str:
        assert self.cut is not None
        return f"timestamp {quote_literal(self.cut.isoformat(sep=' '))}"

    def _format(self, value: str) -> str:
        """``value`` (a timestamp of the column or of its bucket) as its key text."""
        assert self.grain is not None
        text = f"strftime({value}, {quote_literal(GRAINS[self.grain])})"
        if self.rollup is None:
            return text
        older = f"strftime({value}, {quote_literal(GRAINS[self.rollup])})"
        return f"case when {value} >= {self._cut_sql()} then {text} else {older} end"

    def key_sql(self, parquet_type: str) -> str:
        """The partition key of a file's row as text: the column (of its Parquet type) as text, or its
        bucket formatted."""
        column = f"cast({quote_ident(self.column)} as {parquet_type})"
        return f"cast({column} as varchar)" if self.grain is None else self._format(column)

    def bucket_sql(self) -> str:
        """What the warehouse relation's rows are grouped by: the column, or its bucket (in the column's
        own type: a cast to ``timestamptz`` row by row costs more than the rest of the scan)."""
        column = quote_ident(self.column)
        if self.grain is None:
            return column
        bucket = f"date_trunc({quote_literal(self.grain)}, {column})"
        if self.rollup is None:
            return bucket
        older = f"date_trunc({quote_literal(self.rollup)}, {column})"
        return f"case when {column} >= {self._cut_sql()} then {bucket} else {older} end"

    def bucket_key_sql(self, parquet_type: str) -> str:
        """The text key of a warehouse bucket (``bucket_sql``): the same text ``key_sql`` gives for its
        rows in the files (the warehouse keeps naive UTC timestamps, the session's zone is UTC)."""
        bucket = self.bucket_sql()
        return (
            f"cast(cast({bucket} as {parquet_type}) as varchar)"
            if self.grain is None
            else self._format(bucket)
        )

    def select_keys_sql(self, parquet_type: str, keys: list[str]) -> str:
        """A filter on the warehouse relation for the rows of ``keys``. With a grain, ranges of the column
        (DuckDB skips the row groups outside them by their min/max) instead of formatting every row."""
        if self.grain is None:
            values = ", ".join(quote_literal(k) for k in keys)
            return f"{self.bucket_key_sql(parquet_type)} in ({values})" if keys else "false"
        column = quote_ident(self.column)
        ranges = []
        for key in keys:
            start, step = self._bucket(key)
            bound = f"timestamp {quote_literal(start.isoformat(sep=' '))}"
            ranges.append(f"({column} >= {bound} and {column} < {bound} + interval 1 {step})")
        return " or ".join(ranges) if ranges else "false"

    def _bucket(self, key: str) -> tuple[datetime, str]:
        """The start and the grain of the bucket a key names (a grain's key, or a rollup's)."""
        assert self.grain is not None
        for grain in (self.grain, self.rollup):
            if grain is not None:
                try:
                    return datetime.strptime(key, GRAINS[grain]), grain
                except ValueError:
                    continue
        raise ValueError(f"partition key {key!r} is not a {self.grain} or {self.rollup} of {self.column}")

    def manifest_fields(self) -> dict[str, str]:
        """What the manifest says about the scheme beyond ``partition_by``."""
        out = {"partition_grain": self.grain} if self.grain else {}
        return {**out, "partition_rollup": self.rollup} if self.rollup else out


_NAIVE_HASHES_AS_ZONED: bool | None = None


def _naive_hashes_as_zoned(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether this DuckDB hashes a naive timestamp as the same instant in ``timestamptz`` (asked once per
    process: the engine's hash, not a promise of its documentation)."""
    global _NAIVE_HASHES_AS_ZONED
    if _NAIVE_HASHES_AS_ZONED is None:
        (same,) = con.execute(
            "select hash(t) = hash(timezone('UTC', t)) "
            "and hash(row(t, 1)) = hash(row(timezone('UTC', t), 1)) "
            "from (select timestamp '2026-12-08 01:02:03.456789' as t)"
        ).fetchone()
        _NAIVE_HASHES_AS_ZONED = bool(same)
    return _NAIVE_HASHES_AS_ZONED


def hash_types(
    con: duckdb.DuckDBPyConnection, file_columns: list[tuple[str, str]], columns: list[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The types to cast the warehouse columns to before hashing a row, so the hash equals the files'
    (``file_columns``: the Parquet read-back types). A naive ``TIMESTAMP`` written as ``timestamptz`` is
    hashed as it is when this DuckDB gives both the same hash (the same microseconds, UTC): a time-zone
    cast per row costs more than the rest of the scan. (A wrong answer could only fail the comparison,
    never pass a difference.)"""
    source, same = dict(columns), _naive_hashes_as_zoned(con)
    return [
        (
            name,
            "TIMESTAMP"
            if same and ftype == "TIMESTAMP WITH TIME ZONE" and source.get(name) == "TIMESTAMP"
            else ftype,
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
    scheme: Scheme,
    columns: list[tuple[str, str]],
    file_columns: list[tuple[str, str]],
) -> dict[str | None, Group]:
    """Per partition key of the relation (``columns``: its own): rows, checksum and newest value of the
    high-water column (of its Parquet type), in one scan."""
    types = dict(file_columns)
    hwm = spec.high_water_mark
    newest = f"cast(max({quote_ident(hwm)}) as {types[hwm]})" if hwm and hwm in types else "null"
    found = con.execute(
        f"select {scheme.bucket_key_sql(types[scheme.column])}, count(*), "
        f"coalesce(sum({row_hash(hash_types(con, file_columns, columns))}::hugeint), 0)::varchar, {newest} "
        f"from {relation} group by {scheme.bucket_sql()}"
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
    con: duckdb.DuckDBPyConnection, files: list[Path], scheme: Scheme, file_columns: list[tuple[str, str]]
) -> dict[str, FileFigures]:
    """Per file (by its path as DuckDB reports it): rows, distinct keys, the key and the checksum, read
    from the files' rows (not their names), in one pass over them. A file without rows is absent."""
    key = scheme.key_sql(dict(file_columns)[scheme.column])
    found = con.execute(
        f"select filename, count(*), count(distinct {key}), min({key}), "
        f"coalesce(sum({row_hash(file_columns)}::hugeint), 0)::varchar "
        f"from read_parquet({parquet_list(files)}, filename = true, hive_partitioning = false) "
        "group by filename"
    ).fetchall()
    return {name: FileFigures(rows, keys, value, int(total)) for name, rows, keys, value, total in found}
