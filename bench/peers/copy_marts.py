"""BENCHMARK PEER - plain DuckDB COPY of the marts to Parquet, the yardstick for the publish step.

Not part of the pipeline: no manifest, no atomic swap, no lock, no PII handling. It opens the warehouse
read-only, finds every table in the marts schema(s) and runs one `COPY … TO '<mart>.parquet'` each,
one after another, which is as fast as DuckDB writes Parquet (zstd, the codec the publish step uses, so
the comparison is about the publish machinery and not the codec). Given the publish manifest, it writes
the same layout too: a mart the publish partitions (hive folders by month) is COPYed with the same
`PARTITION_BY`, so both sides write the same files and `publish ÷ COPY` says what the guarantees cost
(lock, verification read-back, checksums, manifest, atomic switch), not what the layout costs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import duckdb


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
        if partition_by:
            target = args.out / table
            options = f"PARTITION_BY ({partition_by}), WRITE_PARTITION_COLUMNS true, "
        else:
            target = args.out / f"{table}.parquet"
            options = ""
        con.execute(f"COPY {schema}.{table} TO '{target}' ({options}FORMAT parquet, COMPRESSION zstd)")
    con.close()
    print(
        f"copy peer: {len(tables)} marts → {args.out} in {time.perf_counter() - started:.2f}s",
        file=sys.stderr,
    )
    return 0 if tables else 1


if __name__ == "__main__":
    sys.exit(main())
