"""BENCHMARK PEER - plain DuckDB COPY of the marts to Parquet, the yardstick for the publish step.

Not part of the pipeline: no manifest, no atomic swap, no lock, no PII handling. It opens the warehouse
read-only, finds every table in the marts schema(s) and runs one `COPY … TO '<mart>.parquet'` each,
which is as fast as DuckDB writes Parquet (zstd, the codec the publish step uses, so the comparison
is about the publish machinery and not the codec). `publish ÷ COPY` says what its guarantees cost.
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
    wanted = set(json.loads(args.manifest.read_text())["marts"]) if args.manifest else set()
    tables = [(s, t) for s, t in mart_tables(con) if not wanted or t in wanted]
    for schema, table in tables:
        target = args.out / f"{table}.parquet"
        con.execute(f"COPY {schema}.{table} TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
    con.close()
    print(
        f"copy peer: {len(tables)} marts → {args.out} in {time.perf_counter() - started:.2f}s",
        file=sys.stderr,
    )
    return 0 if tables else 1


if __name__ == "__main__":
    sys.exit(main())
