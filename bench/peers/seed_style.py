"""BENCHMARK PEER - the seed-style script: how a first draft would load the shop into DuckDB.

Not part of the pipeline. Each endpoint is downloaded in full with requests (`resp.json()`), the pages
are concatenated in memory, flattened with pandas.json_normalize, and written to DuckDB with
CREATE OR REPLACE TABLE from the DataFrame. No incremental state, no merge keys, no lock, no retry:
this is the baseline the project must beat, in speed and in memory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import duckdb
import pandas as pd
import requests

from bench.peers.api import select, walk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="benchmark peer: requests + pandas → DuckDB")
    parser.add_argument("only", nargs="*", help="endpoint or service names (default: all)")
    parser.add_argument("--database", required=True, help="DuckDB file to (re)write")
    parser.add_argument("--schema", default="seed_style")
    parser.add_argument("--page-size", type=int, default=int(os.environ.get("BENCH_PAGE_SIZE", "5000")))
    args = parser.parse_args(argv)

    con = duckdb.connect(args.database)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {args.schema}")
    session = requests.Session()
    for endpoint in select(args.only):
        started = time.perf_counter()
        records: list[dict] = []
        for page in walk(session, endpoint, args.page_size, json.loads):
            records.extend(page)
        if not records:  # an empty feed (e.g. no erasures yet) still becomes an empty table
            con.execute(f"CREATE OR REPLACE TABLE {args.schema}.{endpoint.name} ({endpoint.key} BIGINT)")
            continue
        frame = pd.json_normalize(records, sep="__")
        # Nested lists (addresses, items) stay as Python lists; store them as JSON text like a draft would.
        for column in frame.columns:
            if frame[column].map(lambda v: isinstance(v, list | dict)).any():
                frame[column] = frame[column].map(json.dumps)
        con.register("frame_view", frame)
        con.execute(f"CREATE OR REPLACE TABLE {args.schema}.{endpoint.name} AS SELECT * FROM frame_view")
        con.unregister("frame_view")
        print(
            f"seed-style: {endpoint.name}: {len(frame)} rows in {time.perf_counter() - started:.2f}s "
            f"→ {args.database}:{args.schema}.{endpoint.name}",
            file=sys.stderr,
        )
    con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
