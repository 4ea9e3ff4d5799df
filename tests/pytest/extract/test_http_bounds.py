"""The loader against servers that misbehave at the edges: every request bounded in time and in size,
a garbage ``Retry-After`` harmless, and every HTTP failure saying which URL failed and what to check.

Each case points one service's base URL at a real HTTP server on 127.0.0.1 written for the case
(``faultserver.py``): a drip of one byte at a time, headers that never end, a 200 MiB page, a gzip bomb,
an HTML page, an HTML token endpoint, a closed port; or a proxy in front of the real service that
answers the first request of each path with a 429 and a bad ``Retry-After``. Time and memory are
measured on the loader as a real process; the message cases run in-process (no start-up per case).
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from extract.runner import run
from services.launcher import Fleet
from tests.pytest.extract.faultserver import (
    MIB,
    drip_body,
    drip_headers,
    fault_server,
    gzip_bomb,
    html_page,
    huge_page,
    proxy,
)
from tests.pytest.extract.helpers import FAST_RETRIES, LoaderEnv, assert_matches_source, popen_cli
from tests.pytest.support.ports import closed_port

RSS_BOUND_MB = 600  # a normal run of one service peaks near 0.2 GB; unbounded, these pages took 1-1.7 GB


def _run_measured(
    env: LoaderEnv, *args: str, extra: dict[str, str], timeout: float
) -> tuple[int, str, float]:
    """``python -m extract ARGS`` as a real process: (exit code, output, peak RSS in MB of that process).

    The loader runs under ``bench/wrap.py``, a fresh small process, because a child's ``ru_maxrss`` keeps
    the high-water mark of the process it was forked from: started straight from this pytest worker, the
    loader would report the worker's own peak (hundreds of MB after other in-process loads)."""
    measured = env.root / f"rss-{time.monotonic_ns()}.json"
    wrap = [sys.executable, "-m", "bench.wrap", "--out", str(measured), "--"]
    proc = popen_cli(env, *args, extra=extra, wrapper=wrap)
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        reader.join(timeout=5)
        pytest.fail(f"the loader was still running after {timeout}s:\n{''.join(out)[-3000:]}")
    reader.join(timeout=10)
    return proc.returncode, "".join(out), json.loads(measured.read_text())["maxrss_mb"]


@pytest.mark.parametrize("drip", [drip_body(0.25), drip_headers(0.25)], ids=["body", "headers"])
def test_a_slow_drip_is_cut_at_the_request_deadline(
    fleet: Fleet, loader: Callable[..., LoaderEnv], drip: Callable
) -> None:
    """Each read gets a byte well inside ``read_timeout``, so only the total deadline can end it; the run
    fails within deadline x attempts (+ backoff and slack), naming the knob, with the URL."""
    deadline, attempts = 3.0, 2
    with fault_server(drip) as srv:
        env = loader(fleet, **FAST_RETRIES)
        extra = {
            "SOURCES__CATALOG__BASE_URL": srv.url,
            "SOURCES__EXTRACT__READ_TIMEOUT": "2",
            "SOURCES__EXTRACT__REQUEST_DEADLINE": str(deadline),
            "SOURCES__EXTRACT__MAX_ATTEMPTS": str(attempts),
        }
        code, output, _ = _run_measured(env, "catalog", extra=extra, timeout=120)
        ended = time.monotonic()
        first = min(t for _, _, t in srv.hits)
    assert code == 1, output[-3000:]
    took = ended - first
    assert took < deadline * attempts + 10, f"the loader ran {took:.1f}s after its first request"
    assert "last status timeout: the whole request took longer than request_deadline = 3s" in output, output[
        -3000:
    ]
    assert f"[{srv.url}/v1/" in output  # the URL, without the query
    assert "raise [sources.extract] request_deadline" in output
    assert len([h for h in srv.hits if h[1].startswith("/v1/products")]) == attempts


@pytest.mark.parametrize("kind", ["200MiB", "200MiB-no-length", "gzip-bomb"])
def test_a_huge_or_inflating_body_fails_at_the_cap_in_bounded_memory(
    fleet: Fleet, loader: Callable[..., LoaderEnv], kind: str
) -> None:
    """A body past ``max_response_mib`` (counted after decompression) fails that page at once, with the
    cap and the knob in the message, and the loader's peak memory stays bounded (both endpoints of the
    service get such a body at the same time)."""
    if kind.startswith("200MiB"):
        answer = huge_page(200 * MIB, announce=kind == "200MiB")
    else:
        answer, compressed = gzip_bomb(300 * MIB)
        assert compressed < 400_000  # the bomb really is small on the wire
    with fault_server(answer) as srv:
        env = loader(fleet, **FAST_RETRIES)
        code, output, peak_mb = _run_measured(
            env, "catalog", extra={"SOURCES__CATALOG__BASE_URL": srv.url}, timeout=180
        )
        products = [h for h in srv.hits if h[1].startswith("/v1/products")]
    assert code == 1, output[-3000:]
    assert "response body over the 64 MiB cap (max_response_mib = 64)" in output, output[-3000:]
    assert "raise [sources.extract] max_response_mib" in output
    assert f"[{srv.url}/v1/products]" in output
    assert len(products) == 1  # an oversized body is not fetched again
    assert peak_mb < RSS_BOUND_MB, f"the loader peaked at {peak_mb:.0f} MB"


def _http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


@pytest.mark.parametrize(
    ("value", "garbage"),
    [("nan", True), ("-1", True), ("soon", True), (None, False)],
    ids=["nan", "negative", "word", "http-date"],
)
def test_retry_after_garbage_is_ignored_and_an_http_date_is_honoured(
    fleet: Fleet,
    loader: Callable[..., LoaderEnv],
    caplog: pytest.LogCaptureFixture,
    value: str | None,
    garbage: bool,
) -> None:
    """The first request of each endpoint gets a 429 with ``Retry-After: value`` (a date 60 s ahead for
    http-date); the run then goes through a proxy to the real service and must load it exactly. A
    garbage value is one warning per service and a normal backoff (``FAST_RETRIES``: at most 0.2 s); a
    date is honoured, capped by ``max_retry_after`` (2 s here)."""
    header = value if value is not None else _http_date(60)
    body = b'{"error": {"code": "rate_limited", "message": "slow down", "status": 429}}'

    def first(path: str) -> tuple[int, dict[str, str], bytes] | None:
        return 429, {"Content-Type": "application/json", "Retry-After": header}, body

    with fault_server(proxy(fleet.url("catalog"), first)) as srv:
        env = loader(fleet, **FAST_RETRIES, SOURCES__CATALOG__BASE_URL=srv.url)
        with caplog.at_level(logging.WARNING, logger="extract"):
            result = run(["catalog"])
    assert result.failures == {}
    assert_matches_source(env, fleet.data_dir, ("catalog",))
    waits = [
        float(w)
        for w in re.findall(
            r"catalog \S+: attempt 1/3 failed \(429: rate limited\); retrying in ([\d.]+)s", caplog.text
        )
    ]
    assert len(waits) == 2, caplog.text  # products and categories: one 429 each
    ignored = caplog.text.count("ignoring Retry-After")
    if garbage:
        assert ignored == 1, caplog.text  # once per service and run
        assert f"ignoring Retry-After {value!r}" in caplog.text
        assert all(w <= 0.2 for w in waits), waits
    else:
        assert ignored == 0, caplog.text
        assert waits == [2.0, 2.0]
    assert "retrying in nans" not in caplog.text and "Invalid value NaN" not in caplog.text


def test_an_html_page_is_named_as_such(fleet: Fleet, loader: Callable[..., LoaderEnv]) -> None:
    with fault_server(html_page) as srv:
        loader(fleet, **FAST_RETRIES, SOURCES__CATALOG__BASE_URL=srv.url)
        message = run(["catalog"]).failures["catalog"]
    assert "catalog products: failed after 3 attempt(s); last status 200" in message, message
    assert "not JSON: the service answered a text/html body (" in message
    assert f"[{srv.url}/v1/products]" in message
    assert (
        "check that [sources.catalog] base_url (SOURCES__CATALOG__BASE_URL) is the service's API" in message
    )
    assert "malformed JSON" not in message


def test_an_html_token_endpoint_is_named_as_such(fleet: Fleet, loader: Callable[..., LoaderEnv]) -> None:
    with fault_server(html_page) as srv:
        loader(fleet, **FAST_RETRIES, SOURCES__ORDERS__BASE_URL=srv.url)
        message = run(["orders"]).failures["orders"]
        posts = [h for h in srv.hits if h[:2] == ("POST", "/oauth/token")]
    assert "orders POST /oauth/token: failed after 3 attempt(s); last status 200" in message, message
    assert "not JSON: the service answered a text/html body (" in message
    assert f"[{srv.url}/oauth/token]" in message
    assert "JSONDecodeError" not in message and "connection error" not in message
    assert len(posts) == 3


def test_connection_refused_names_the_url_and_what_to_check(
    fleet: Fleet, loader: Callable[..., LoaderEnv]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"  # a port nothing listens on
    loader(fleet, **FAST_RETRIES, SOURCES__CATALOG__BASE_URL=url)
    message = run(["catalog"]).failures["catalog"]
    assert (
        "failed after 3 attempt(s); last status connection error: ConnectionError (connection refused)"
        in message
    )
    assert f"[{url}/v1/" in message, message
    assert (
        "check that the catalog service is running at that address and that [sources.catalog] base_url"
        in message
    )
