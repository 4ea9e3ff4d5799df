"""BENCHMARK PEER - the limit client: walk every page of every endpoint, decode it, store nothing.

Why: it is the ceiling for any loader against these services on this machine (HTTP + JSON decode and
nothing else), so `extract ÷ limit` says how much of the available speed the project's loader keeps.
Endpoints are walked in a process pool (one worker per core by default) so the ceiling is not held down
by the GIL. The summary (rows, pages, money sums per endpoint) goes to stdout as JSON so the harness
can check the walk was complete.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import orjson
import requests

from bench.peers.api import Endpoint, select, walk


def pull(endpoint: Endpoint, page_size: int) -> dict[str, Any]:
    """Walk one endpoint; return its counts and money sum."""
    rows = pages = 0
    money = 0
    started = time.perf_counter()
    with requests.Session() as session:
        for page in walk(session, endpoint, page_size, orjson.loads):
            pages += 1
            rows += len(page)
            if endpoint.money:
                money += sum(r[endpoint.money] or 0 for r in page)
    return {
        "endpoint": endpoint.name,
        "rows": rows,
        "pages": pages,
        "money": money if endpoint.money else None,
        "seconds": round(time.perf_counter() - started, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="benchmark peer: walk all pages, store nothing")
    parser.add_argument("only", nargs="*", help="endpoint or service names (default: all)")
    parser.add_argument("--page-size", type=int, default=int(os.environ.get("BENCH_PAGE_SIZE", "5000")))
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args(argv)
    endpoints = select(args.only)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(pull, endpoints, [args.page_size] * len(endpoints)))
    summary = {r["endpoint"]: r for r in results}
    sys.stdout.write(orjson.dumps({"peer": "limit_client", "endpoints": summary}).decode() + "\n")
    total = sum(r["rows"] for r in results)
    print(
        f"limit client: {total} rows from {len(results)} endpoints, page size {args.page_size}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
