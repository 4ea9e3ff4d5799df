"""Fast checks without a server: the ``Retry-After`` parser (RFC 9110) and how a client reads it, the
retry decisions, the derived bounds, the origin rule, the URL shown in messages, and how a non-JSON page
is named. The same code against real
servers: test_http_bounds.py and test_faults.py."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

import orjson
import pytest
import requests
from requests.structures import CaseInsensitiveDict

from extract.advice import public_url
from extract.auth import NoAuth
from extract.errors import BadPage, UnsafePagination
from extract.http import ServiceClient, origin
from extract.limits import HttpPolicy
from extract.pages import parse_page
from extract.retry import Attempt, backoff, decide, parse_http_date, parse_retry_after
from extract.transfer import Reply

NOW = calendar.timegm((2026, 12, 1, 12, 0, 0))  # Tue, 01 Dec 2026 12:00:00 GMT


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        ("0", 0.0),
        (" 7 ", 7.0),  # optional whitespace around a field value
        ("007", 7.0),
        ("Tue, 01 Dec 2026 12:00:30 GMT", 30.0),  # IMF-fixdate
        ("Tuesday, 01-Dec-26 12:01:00 GMT", 60.0),  # obsolete RFC 850
        ("Tue Dec  1 12:00:05 2026", 5.0),  # obsolete asctime
        ("Tue, 01 Dec 2026 11:00:00 GMT", 0.0),  # a date in the past: no wait
    ],
)
def test_retry_after_valid_values(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "nan",
        "NaN",
        "inf",
        "-1",
        "+5",
        "1.5",
        "1e3",
        "soon",
        "5 seconds",
        "Tue, 01 Dec 2026 12:00:30 UTC",  # only GMT
        "tue, 01 dec 2026 12:00:30 gmt",  # HTTP-date is case-sensitive
        "Tue, 31 Feb 2026 12:00:30 GMT",  # no such day
        "Tue, 01 Dec 2026 25:00:30 GMT",
        "2026-12-01T12:00:30Z",  # ISO 8601 is not an HTTP-date
    ],
)
def test_retry_after_anything_else_is_absent(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_rfc850_two_digit_years_are_the_most_recent_past_century_past_fifty_years() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT", now).year == 1994
    assert parse_http_date("Friday, 06-Nov-76 08:49:37 GMT", now).year == 2076
    assert parse_http_date("Saturday, 06-Nov-77 08:49:37 GMT", now).year == 1977


BUDGET = HttpPolicy(max_attempts=4, backoff_base=0.5, backoff_max=3.0, max_retry_after=10.0)


def _no_jitter() -> float:
    return 1.0  # the top of the 50-100 % jitter band


@pytest.mark.parametrize(
    ("outcome", "wait"),
    [
        (Attempt("timeout"), 0.5),
        (Attempt("deadline"), 0.5),
        (Attempt("connection"), 0.5),
        (Attempt("bad_page", 200), 0.5),
        (Attempt("status", 500), 0.5),
        (Attempt("status", 502, retry_after=4.0), 0.5),  # only 429 and 503 take Retry-After
        (Attempt("status", 503, retry_after=4.0), 4.0),
        (Attempt("status", 429, retry_after=4.0), 4.0),
        (Attempt("status", 429, retry_after=0.0), 0.0),
        (Attempt("status", 429, retry_after=3600.0), 10.0),  # capped by max_retry_after
        (Attempt("status", 429), 0.5),  # absent or invalid: normal backoff
        (Attempt("status", 400), None),
        (Attempt("status", 401), None),
        (Attempt("status", 404), None),
        (Attempt("tls"), None),
        (Attempt("too_large"), None),  # the same URL sends the same body: never fetched again
    ],
)
def test_what_follows_a_first_failed_attempt(outcome: Attempt, wait: float | None) -> None:
    assert decide(BUDGET, 1, outcome, _no_jitter) == wait


def test_the_budget_ends_at_max_attempts_whatever_the_failure() -> None:
    for outcome in (Attempt("timeout"), Attempt("status", 429, retry_after=1.0), Attempt("status", 503)):
        assert decide(BUDGET, 3, outcome, _no_jitter) is not None
        assert decide(BUDGET, 4, outcome, _no_jitter) is None


def test_backoff_doubles_is_capped_and_jittered() -> None:
    assert [backoff(BUDGET, n, _no_jitter) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff(BUDGET, 2, lambda: 0.0) == 0.5  # the bottom of the band: half the delay


def test_unknown_attempt_kinds_are_a_bug() -> None:
    with pytest.raises(ValueError, match="unknown attempt kind"):
        decide(BUDGET, 1, Attempt("weird"))


def test_the_deadline_defaults_to_four_read_timeouts_and_the_cap_is_in_mib() -> None:
    assert HttpPolicy().deadline == 120.0
    assert HttpPolicy(read_timeout=3).deadline == 12.0
    assert HttpPolicy(read_timeout=3, request_deadline=5).deadline == 5.0
    assert HttpPolicy(read_timeout=3).deadline_text() == "request_deadline = 12s (4 x read_timeout)"
    assert HttpPolicy().max_bytes == 64 * 2**20
    assert HttpPolicy(max_response_mib=0.5).max_bytes == 2**19


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("request_deadline", float("nan")),
        ("request_deadline", -1.0),
        ("max_response_mib", 0.0),
        ("max_response_mib", float("inf")),
    ],
)
def test_a_bound_that_is_no_bound_is_refused(knob: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{knob} must be"):
        HttpPolicy(**{knob: value})


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8103/v1/orders?updated_since=x&cursor=abc", "http://127.0.0.1:8103/v1/orders"),
        ("https://user:pw@api.example.com/v1/x?api_key=secret#frag", "https://api.example.com/v1/x"),
        ("http://[::1]:8101/v1/customers", "http://[::1]:8101/v1/customers"),
    ],
)
def test_messages_show_the_url_without_query_or_user_info(url: str, shown: str) -> None:
    assert public_url(url) == shown


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"<!doctype html><html><body>Sign in</body></html>", "text/html; charset=utf-8", "a text/html body"),
        (
            b"<html>\n<body>Bad gateway</body>\n</html>",
            "application/json",
            "HTML-looking (declared application/json)",
        ),
        (b"Service Unavailable", "text/plain", "a text/plain body (19 bytes)"),
        (b'{"data": [{"id": 1}', "application/json", "malformed JSON body"),
    ],
    ids=["html", "html-labelled-json", "plain-text", "truncated-json"],
)
def test_a_body_that_is_not_json_is_named_by_its_content_type(
    body: bytes, content_type: str, message: str
) -> None:
    with pytest.raises(BadPage, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_page(bytearray(body), {"Content-Type": content_type})


def test_a_page_parses_from_the_transfer_buffer_in_place() -> None:
    doc = {"data": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}], "total": 2}
    page = parse_page(bytearray(orjson.dumps(doc)), {"content-type": "text/plain"})  # parses: accepted
    assert page.records.column("id").to_pylist() == [1, 2]
    assert page.meta == {"total": 2}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8101/orders?page=2", ("http", "127.0.0.1", 8101)),
        ("HTTPS://Example.COM/x", ("https", "example.com", 443)),  # default port, case folded
        ("http://example.com", ("http", "example.com", 80)),
        ("http://[::1]:9000/", ("http", "::1", 9000)),
    ],
)
def test_an_origin_is_scheme_host_and_port_with_the_default_filled_in(
    url: str, expected: tuple[str, str, int]
) -> None:
    assert origin(url) == expected


def _client(base_url: str = "http://127.0.0.1:8101/") -> ServiceClient:
    return ServiceClient("orders", base_url, NoAuth(), HttpPolicy(), requests.Session())


def test_the_client_follows_only_its_own_origin() -> None:
    client = _client()
    assert client.url("/orders") == "http://127.0.0.1:8101/orders"  # the base URL's slash dropped
    client.check_origin("http://127.0.0.1:8101/orders?cursor=abc", "orders")  # same origin: allowed
    for foreign in ("http://127.0.0.1:8102/orders", "https://127.0.0.1:8101/orders", "http://evil.test/x"):
        with pytest.raises(UnsafePagination, match="refusing to follow it"):
            client.check_origin(foreign, "orders")


def test_an_invalid_retry_after_is_absent_and_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    client = _client()

    def reply(value: str) -> Reply:
        return Reply(503, "Service Unavailable", CaseInsensitiveDict({"retry-after": value}), bytearray())

    with caplog.at_level("WARNING", logger="extract.http"):
        assert client.retry_after(reply("12"), "orders") == 12.0
        assert client.retry_after(reply("soon"), "orders") is None
        assert client.retry_after(reply("later"), "orders") is None
    assert len([r for r in caplog.records if "Retry-After" in r.getMessage()]) == 1
