"""``python -m extract.baseline``: the yardstick for the loader's speed.

Walks exactly the pages the loader walks (same endpoints, page size and pagination) with nothing but
``requests`` + ``orjson`` and no storage, then prints rows/s. The loader's target is >= 0.8x of this;
comparing the two on the same fleet separates the services' own cost from the loader's overhead.
"""

from __future__ import annotations

import argparse
import sys
import time
from urllib.parse import urljoin

import orjson
import requests
from requests.utils import parse_header_links

from extract.config import service_config
from extract.sources import SERVICES


def _headers(service: str, creds: dict[str, str], base: str, session: requests.Session) -> dict[str, str]:
    auth = SERVICES[service].auth
    if auth == "api_key":
        return {"X-API-Key": creds["api_key"]}
    if auth == "bearer":
        return {"Authorization": f"Bearer {creds['token']}"}
    resp = session.post(
        base + "/oauth/token",
        data={"grant_type": "client_credentials", **{k: creds[k] for k in ("client_id", "client_secret")}},
        timeout=30,
    )
    resp.raise_for_status()
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def walk_service(name: str, page_size: int) -> int:
    """Rows of every endpoint of one service, walked page by page; returns the row count."""
    spec = SERVICES[name]
    cfg = service_config(name, spec.auth)
    session = requests.Session()
    session.trust_env = False
    base = cfg.base_url.rstrip("/")
    headers = _headers(name, cfg.credentials, base, session)
    rows = 0
    for ep in spec.endpoints:
        url: str | None = base + ep.path
        params: dict | None = {**ep.params, ep.paging.limit_param or "limit": page_size}
        if ep.paginator == "offset":
            params["offset"] = 0
        while url:
            resp = session.get(url, params=params, headers=headers, timeout=60)
            resp.raise_for_status()
            doc = orjson.loads(resp.content)
            data = doc["data"]
            rows += len(data)
            if ep.paginator == "cursor":
                url = url if doc.get("next_cursor") else None
                params = {**params, "cursor": doc.get("next_cursor")}
            elif ep.paginator == "offset":
                params = {**params, "offset": params["offset"] + len(data)}
                url = url if data and params["offset"] < doc["total"] else None
            elif ep.paginator == "link_header":
                links = parse_header_links(resp.headers.get("Link", ""))
                links = [x for x in links if x.get("rel") == "next"]
                url, params = (urljoin(base + "/", links[0]["url"]), None) if links else (None, None)
            elif ep.paginator == "json_link":
                nxt = doc["links"]["next"]
                url, params = (urljoin(base + "/", nxt), None) if nxt else (None, None)
            else:
                url = url if doc.get("has_more") else None
                params = {**params, "after_id": doc.get("next_after_id")}
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m extract.baseline", description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*")
    p.add_argument("--page-size", type=int, default=5000)
    args = p.parse_args(argv)
    total = 0
    started = time.perf_counter()
    for name in args.names or list(SERVICES):
        t = time.perf_counter()
        n = walk_service(name, args.page_size)
        total += n
        print(f"{name:<10} {n:>10,} rows in {time.perf_counter() - t:6.2f}s", flush=True)
    took = time.perf_counter() - started
    print(f"{'total':<10} {total:>10,} rows in {took:6.2f}s ({total / took:,.0f} rows/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
