"""Fast checks without a server: each paging style's next request and where it stops, the first
request, the reported total and the loopback alias (extract/paginators.py). The walk itself, its
guards and real servers: test_source_files.py and test_faults.py."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from extract.pages import Page
from extract.paginators import (
    at_path,
    first_request,
    keys_to_check,
    loopback_alias,
    next_request,
    reported_total,
)
from extract.spec import Endpoint, Paging

BASE = "http://127.0.0.1:8101"
URL = BASE + "/items"


def endpoint(paginator: str, **paging: Any) -> Endpoint:
    return Endpoint(
        name="items",
        path="/items",
        fields={"id": "int"},
        primary_key="id",
        paginator=paginator,  # type: ignore[arg-type]
        params={"status": "open"},
        paging=Paging(**paging),
    )


def page(rows: int, meta: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Page:
    return Page(pa.table({"id": list(range(rows))}), meta or {}, headers or {}, 0)


def test_first_request_has_the_params_the_page_size_and_the_style_start() -> None:
    assert first_request(endpoint("offset"), URL, 100, {"updated_since": "x"}) == (
        URL,
        {"status": "open", "limit": 100, "updated_since": "x", "offset": 0},
    )
    assert first_request(endpoint("page_number", first_page=0), URL, 50, {})[1] == {
        "status": "open",
        "limit": 50,
        "page": 0,
    }
    assert first_request(endpoint("cursor", limit_param=None), URL, 50, {})[1] == {"status": "open"}


def test_cursor_follows_the_token_and_stops_without_one() -> None:
    ep = endpoint("cursor")
    assert next_request(ep, (URL, {"limit": 2}), page(2, {"next_cursor": "abc"}), BASE, 2) == (
        URL,
        {"limit": 2, "cursor": "abc"},
    )
    assert next_request(ep, (URL, {"limit": 2}), page(2, {"next_cursor": ""}), BASE, 2) is None
    assert next_request(ep, (URL, {"limit": 2}), page(2, {}), BASE, 2) is None


@pytest.mark.parametrize(
    ("got", "total", "offset", "expected"),
    [
        (2, None, 0, 2),  # a full page, no total: go on
        (1, None, 0, None),  # a short page without a total is the last
        (0, None, 4, None),  # an empty page ends the walk
        (2, 10, 4, 6),  # a total not reached: go on
        (2, 6, 4, None),  # the total is reached
        (1, 10, 4, 5),  # with a total a short page does not end the walk
    ],
)
def test_offset_advances_by_the_rows_got_until_the_total_or_a_short_page(
    got: int, total: int | None, offset: int, expected: int | None
) -> None:
    ep = endpoint("offset", total_path="total")
    meta = {} if total is None else {"total": total}
    nxt = next_request(ep, (URL, {"limit": 2, "offset": offset}), page(got, meta), BASE, offset + got)
    assert (nxt[1]["offset"] if nxt else None) == expected


def test_the_total_header_wins_over_the_body_and_is_read_case_insensitively() -> None:
    paging = Paging(total_path="total", total_header="X-Total-Count")
    assert reported_total(page(1, {"total": 99}, {"x-total-count": "7"}), paging) == 7
    assert reported_total(page(1, {"total": 99}, {}), paging) is None
    assert reported_total(page(1, {"total": True}), Paging(total_path="total")) is None  # not a number
    assert reported_total(page(1, {"meta": {"n": "12"}}), Paging(total_path="meta.n")) == 12


@pytest.mark.parametrize(
    ("number", "got", "meta", "walked", "expected"),
    [
        (1, 2, {}, 2, 2),
        (1, 1, {}, 1, None),  # short page (stop_on_short_page)
        (3, 2, {"pages": 3}, 6, None),  # the last of total_pages
        (2, 2, {"pages": 3}, 4, 3),
        (1, 0, {}, 0, None),
    ],
)
def test_page_number_counts_pages_until_the_last(
    number: int, got: int, meta: dict[str, Any], walked: int, expected: int | None
) -> None:
    ep = endpoint("page_number", total_pages_path="pages")
    nxt = next_request(ep, (URL, {"limit": 2, "page": number}), page(got, meta), BASE, walked)
    assert (nxt[1]["page"] if nxt else None) == expected


def test_page_number_ignores_short_pages_when_told_to() -> None:
    ep = endpoint("page_number", stop_on_short_page=False)
    assert next_request(ep, (URL, {"limit": 2, "page": 1}), page(1), BASE, 1) == (
        URL,
        {"limit": 2, "page": 2},
    )


def test_link_styles_resolve_relative_links_and_stop_without_one() -> None:
    link = endpoint("link_header")
    headers = {"Link": '</items?page=2>; rel="next", </items?page=9>; rel="last"'}
    assert next_request(link, (URL, {}), page(2, headers=headers), BASE, 2) == (BASE + "/items?page=2", None)
    assert next_request(link, (URL, {}), page(2, headers={"Link": '</x>; rel="last"'}), BASE, 2) is None
    json_link = endpoint("json_link")
    assert next_request(json_link, (URL, {}), page(2, {"links": {"next": "/items?c=2"}}), BASE, 2) == (
        BASE + "/items?c=2",
        None,
    )
    assert next_request(json_link, (URL, {}), page(2, {"links": {"next": None}}), BASE, 2) is None


def test_id_cursor_goes_on_while_has_more() -> None:
    ep = endpoint("id_cursor")
    more = page(2, {"has_more": True, "next_after_id": 41})
    assert next_request(ep, (URL, {"limit": 2}), more, BASE, 2) == (URL, {"limit": 2, "after_id": 41})
    assert next_request(ep, (URL, {}), page(2, {"has_more": False, "next_after_id": 43}), BASE, 4) is None


def test_no_paging_is_one_page_and_an_unknown_style_is_a_bug() -> None:
    assert next_request(endpoint("none"), (URL, {}), page(5), BASE, 5) is None
    with pytest.raises(ValueError, match="unknown paginator"):
        next_request(endpoint("sideways"), (URL, {}), page(5), BASE, 5)


def test_at_path_reads_dotted_keys_and_absent_parts_are_none() -> None:
    doc = {"a": {"b": {"c": 3}}, "x": [1]}
    assert at_path(doc, "a.b.c") == 3
    assert at_path(doc, "a.z.c") is None
    assert at_path(doc, "x.y") is None
    assert at_path(doc, None) is None


@pytest.mark.parametrize(
    ("url", "base", "expected"),
    [
        ("http://127.0.0.1:8101/items?p=2", "http://localhost:8101", "http://localhost:8101/items?p=2"),
        ("http://localhost:8101/items", "http://127.0.0.1:8101", "http://127.0.0.1:8101/items"),
        ("http://[::1]:8101/items", "http://localhost:8101", "http://localhost:8101/items"),
        ("http://localhost:8102/items", "http://127.0.0.1:8101", "http://localhost:8102/items"),  # port
        ("https://localhost:8101/items", "http://127.0.0.1:8101", "https://localhost:8101/items"),  # scheme
        ("http://example.com:8101/items", "http://127.0.0.1:8101", "http://example.com:8101/items"),
    ],
)
def test_loopback_alias_only_renames_the_loopback_host(url: str, base: str, expected: str) -> None:
    assert loopback_alias(url, base) == expected


def test_a_message_names_the_total_that_armed_the_short_walk_check_whatever_the_style() -> None:
    """A page-number walk with a total header fails its short-walk check: the message must name that
    header, though page_number's own keys do not include it."""
    keys = keys_to_check(endpoint("page_number", total_header="X-Total-Count"))
    assert "paginator.total_header = 'X-Total-Count'" in keys
    assert "paginator.page_param = 'page'" in keys
    assert "total_path" not in keys  # unset, so not named
    offset = keys_to_check(endpoint("offset", total_path="meta.total"))
    assert offset.count("paginator.total_path") == 1
