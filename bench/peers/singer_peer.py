"""BENCHMARK PEER - Singer: tap-rest-api-msdk piped into target-duckdb, one tap per service.

Not part of the pipeline. The plugins live in their own virtual environment (built by bench.singer under
bench/work/), and are declared inline here as Singer tap/target configs because the Meltano hub is not
reachable. Runs either the plain Singer way (tap stdout → target stdin, no meltano CLI) or through
`meltano run` when a Meltano project was built (`--meltano-project`).

Coverage: the services whose auth and pagination tap-rest-api-msdk can speak - customers (API key,
body cursor), catalog (bearer, offset/limit/total) and payments (API key, `links.next` URL). Orders
(OAuth + RFC 8288 Link with an opaque keyset token) and events (id cursor that repeats at the end, which
the SDK treats as a pagination loop) are not covered; the comparison uses the same endpoints on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.peers.api import base_url

COVERED = ("customers", "products", "categories", "payments", "refunds")
SERVICES = ("customers", "catalog", "payments")


def tap_config(service: str, page_size: int, env: dict[str, str]) -> dict[str, Any]:
    """The inline tap-rest-api-msdk config for one shop service (secrets from the fleet env)."""
    prefix = f"SOURCES__{service.upper()}__"
    common: dict[str, Any] = {
        "api_url": base_url(service, env),
        "records_path": "$.data[*]",
        "num_inference_records": 50,
    }
    if service == "customers":
        return common | {
            "auth_method": "api_key",
            "api_keys": {"X-API-Key": env[prefix + "API_KEY"]},
            "pagination_request_style": "jsonpath_paginator",
            "pagination_response_style": "page",
            "next_page_token_path": "$.next_cursor",
            "pagination_next_page_param": "cursor",
            "params": {"limit": page_size},
            "streams": [{"name": "customers", "path": "/v1/customers", "primary_keys": ["customer_id"]}],
        }
    if service == "catalog":
        return common | {
            "auth_method": "bearer_token",
            "bearer_token": env[prefix + "TOKEN"],
            "pagination_request_style": "offset_paginator",
            "pagination_response_style": "offset",
            "next_page_token_path": "$",
            "pagination_page_size": page_size,
            "pagination_initial_offset": 0,
            "pagination_total_limit_param": "total",
            "streams": [
                {"name": "products", "path": "/v1/products", "primary_keys": ["product_id"]},
                {"name": "categories", "path": "/v1/categories", "primary_keys": ["category_id"]},
            ],
        }
    if service == "payments":
        return common | {
            "auth_method": "api_key",
            "api_keys": {"X-API-Key": env[prefix + "API_KEY"]},
            "pagination_request_style": "jsonpath_paginator",
            "pagination_response_style": "hateoas_body",
            "next_page_token_path": "$.links.next",
            "pagination_page_size": page_size,
            "pagination_limit_per_page_param": "limit",
            "streams": [
                {"name": "payments", "path": "/v1/payments", "primary_keys": ["payment_id"]},
                {"name": "refunds", "path": "/v1/refunds", "primary_keys": ["refund_id"]},
            ],
        }
    raise ValueError(f"the Singer peer does not cover {service!r}")


def target_config(database: Path, schema: str) -> dict[str, Any]:
    return {"filepath": str(database), "default_target_schema": schema, "add_metadata_columns": False}


def run_piped(venv: Path, conf_dir: Path, database: Path, schema: str, page_size: int) -> int:
    """tap | target for each service in turn (one DuckDB writer at a time)."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    target_conf = conf_dir / "target.json"
    target_conf.write_text(json.dumps(target_config(database, schema)))
    os.chmod(target_conf, 0o600)
    for service in SERVICES:
        started = time.perf_counter()
        tap_conf = conf_dir / f"tap-{service}.json"
        tap_conf.write_text(json.dumps(tap_config(service, page_size, dict(os.environ))))
        os.chmod(tap_conf, 0o600)  # holds the service credentials
        tap = subprocess.Popen(
            [str(venv / "bin" / "tap-rest-api-msdk"), "--config", str(tap_conf)], stdout=subprocess.PIPE
        )
        target = subprocess.run(
            [str(venv / "bin" / "target-duckdb"), "--config", str(target_conf)],
            stdin=tap.stdout,
            stdout=subprocess.DEVNULL,
            check=False,
        )
        tap.stdout.close()  # type: ignore[union-attr]
        tap_rc = tap.wait()
        print(
            f"singer: {service}: tap rc={tap_rc} target rc={target.returncode} "
            f"in {time.perf_counter() - started:.2f}s → {database}:{schema}",
            file=sys.stderr,
        )
        if tap_rc or target.returncode:
            return tap_rc or target.returncode
    return 0


def run_meltano(meltano_venv: Path, project: Path) -> int:
    """`meltano run` over the inline-declared plugins of the project bench.singer built."""
    pairs: list[str] = []
    for service in SERVICES:
        pairs += [f"tap-shop-{service}", "target-duckdb"]
    cmd = [str(meltano_venv / "bin" / "meltano"), "run", "--full-refresh", "--force", "--no-install", *pairs]
    env = dict(os.environ, MELTANO_SEND_ANONYMOUS_USAGE_STATS="false")
    started = time.perf_counter()
    rc = subprocess.run(cmd, cwd=project, env=env, check=False).returncode
    print(f"singer (meltano run): rc={rc} in {time.perf_counter() - started:.2f}s", file=sys.stderr)
    return rc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="benchmark peer: Singer tap-rest-api-msdk → target-duckdb")
    parser.add_argument(
        "--venv",
        type=Path,
        required=True,
        help="venv with the plugins (piped mode) or with meltano (--meltano-project)",
    )
    parser.add_argument("--conf-dir", type=Path, required=True, help="where the tap/target configs go")
    parser.add_argument("--database", type=Path, required=True)
    parser.add_argument("--schema", default="singer")
    parser.add_argument("--page-size", type=int, default=int(os.environ.get("BENCH_PAGE_SIZE", "5000")))
    parser.add_argument("--meltano-project", type=Path, default=None, help="run through `meltano run`")
    args = parser.parse_args(argv)
    if args.meltano_project:
        return run_meltano(args.venv, args.meltano_project)
    return run_piped(args.venv, args.conf_dir, args.database, args.schema, args.page_size)


if __name__ == "__main__":
    sys.exit(main())
