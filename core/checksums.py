"""Checksums that let a consumer (and the publisher itself) prove a published version is whole.

Two kinds: a sha256 per file (detects a torn or swapped file byte-for-byte) and a content checksum
per mart (detects lost, duplicated or altered rows, independent of how rows were split into files or
ordered). The content checksum is DuckDB's ``hash()`` of each row summed as a HUGEINT: order-free,
and unlike XOR it does not cancel duplicate rows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20

CONTENT_ALGORITHM = (
    "sum over rows of duckdb hash(row) as hugeint, columns cast to their Parquet read-back types "
    "(files read with hive_partitioning=false)"
)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def quote_ident(name: str) -> str:
    """A SQL identifier in double quotes (embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A SQL string literal (embedded single quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def parquet_list(files: list[Path]) -> str:
    """``[...]`` list of file paths for ``read_parquet``."""
    return "[" + ", ".join(quote_literal(str(f)) for f in files) + "]"


def content_query(relation_sql: str, columns: list[tuple[str, str]] | None = None) -> str:
    """SQL returning ``(row_count, content_checksum)`` over ``relation_sql``.

    With ``columns`` ([(name, type)]), each column is cast to that type first, so a source table can be
    compared with what its Parquet files read back as (e.g. HUGEINT comes back as DOUBLE).
    """
    if columns:
        select = ", ".join(f"cast({quote_ident(n)} as {t}) as {quote_ident(n)}" for n, t in columns)
        inner = f"select {select} from {relation_sql}"
    else:
        inner = f"select * from {relation_sql}"
    return f"select count(*), coalesce(sum(hash(_r)::hugeint), 0)::varchar from ({inner}) as _r"
