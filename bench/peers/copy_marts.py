"""BENCHMARK PEER - plain DuckDB COPY of the marts to Parquet, the yardstick for the publish step.

Not part of the pipeline: no manifest, no atomic swap, no lock, no PII handling. It opens the warehouse
read-only, finds every table in the marts schema(s) and runs one `COPY … TO '<mart>.parquet'` each,
one after another, which is as fast as DuckDB writes Parquet (zstd, the codec the publish step uses, so
the comparison is about the publish machinery and not the codec). Given the publish manifest, it writes
the same layout too: a mart the publish partitions (hive folders by month) is COPYed with the same
`PARTITION_BY` (by the bucket of a grain, and of a rollup before its cut, as the manifest says), so both
sides write the same files and `publish ÷ COPY` says what the guarantees cost
(lock, verification read-back, checksums, manifest, atomic switch), not what the layout costs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import duckdb

# the publish's partition grains (publish/partition.py): the file name format of a bucket
GRAINS = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}


def mart_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """(schema, table) of every table or view in a schema whose name ends in `marts`."""
    return con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema LIKE '%marts' ORDER BY 1, 2"
    ).fetchall()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="benchmark peer: COPY each mart to Parquet")
    parser.add_argument("--database", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--manifest",
        type=Path,
        default=None,
        help="copy only the marts this publish manifest lists (default: every mart)",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(args.database, read_only=True)
    started = time.perf_counter()
    wanted = json.loads(args.manifest.read_text())["marts"] if args.manifest else {}
    tables = [(s, t) for s, t in mart_tables(con) if not wanted or t in wanted]
    for schema, table in tables:
        partition_by = (wanted.get(table) or {}).get("partition_by")
        grain = (wanted.get(table) or {}).get("partition_grain")
        source = f"{schema}.{table}"
        if partition_by and grain:  # a file per hour/day/month/year of the column, as the publish writes
            key = f"strftime(date_trunc('{grain}', {partition_by}), '{GRAINS[grain]}')"
            rollup = (wanted.get(table) or {}).get("partition_rollup")
            if rollup:  # before the current rollup period: a file per rollup bucket
                cut = f"date_trunc('{rollup}', timezone('UTC', now()))"
                older = f"strftime(date_trunc('{rollup}', {partition_by}), '{GRAINS[rollup]}')"
                key = f"case when {partition_by} >= {cut} then {key} else {older} end"
            source = f"(select *, {key} as __key from {schema}.{table})"
            target = args.out / table
            options = "PARTITION_BY (__key), "
        elif partition_by:
            target = args.out / table
            options = f"PARTITION_BY ({partition_by}), WRITE_PARTITION_COLUMNS true, "
        else:
            target = args.out / f"{table}.parquet"
            options = ""
        con.execute(f"COPY {source} TO '{target}' ({options}FORMAT parquet, COMPRESSION zstd)")
    con.close()
    print(
        f"copy peer: {len(tables)} marts → {args.out} in {time.perf_counter() - started:.2f}s",
        file=sys.stderr,
    )
    return 0 if tables else 1


if __name__ == "__main__":
    sys.exit(main())
