"""Sources as files: validation of ``sources/*.yml``, and every auth kind, record path and pagination
style of the vocabulary against a real HTTP server on 127.0.0.1 (``plainapi.py``), with the guards.

The walk cases build the loader's own client and walker from a source file (``make_client`` +
``paginators.walk``: no dlt, milliseconds each); the end-to-end cases load a plain service (no auth,
a bare JSON array, page numbers) through ``extract.runner.run`` into a real DuckDB warehouse, and
prove that a short walk fails without loading anything or moving the cursor.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from core.settings import repo_root
from extract import config, sourcefile
from extract.config import ServiceConfig
from extract.errors import FetchError, ShortWalk, SourceFileError, UnsafePagination
from extract.paginators import first_request, walk
from extract.resources import make_client
from extract.sourcefile import load_dir, load_file, parse
from extract.sources import SERVICES
from extract.spec import Service
from tests.pytest.extract.faultserver import fault_server
from tests.pytest.extract.plainapi import SECRET, Api
from tests.pytest.support.envs import use_loader_project

FIELDS = {"id": "int", "updated_at": "ts", "name": "str"}


def source_text(paginator: Any, records: str = "$", auth: Any = "none", incremental: Any = "snapshot") -> str:
    """A one-endpoint source file for ``plainapi.Api``."""
    doc = {
        "description": "a plain service written elsewhere",
        "auth": auth,
        "endpoints": [
            {
                "name": "items",
                "path": "/items",
                "primary_key": "id",
                "records": records,
                "paginator": paginator,
                "incremental": incremental,
                "fields": FIELDS,
            }
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def service_from(tmp_path: Path, text: str, name: str = "plain") -> Service:
    path = tmp_path / f"{name}.yml"
    path.write_text(text)
    return load_file(path)


def walk_ids(
    service: Service, url: str, creds: dict[str, str] | None = None, page_size: int = 10
) -> list[int]:
    """Every record id one walk of the service's endpoint yields (the loader's client and walker)."""
    cfg = ServiceConfig(service.name, url, creds or {}, config.tuning(service.name))
    client = make_client(service, cfg)
    ep = service.endpoints[0]
    first = first_request(ep, client.url(ep.path), page_size, {})
    ids: list[int] = []
    for page in walk(client, ep, first, 1000, service.where):
        ids += page.records.column("id").to_pylist() if page.records.num_rows else []
    return ids


@pytest.fixture
def api() -> Iterator[tuple[Api, str]]:
    state = Api()
    with fault_server(state.answer) as srv:
        yield state, srv.url  # type: ignore[attr-defined]


ALL = list(range(1, 24))  # Api().rows == 23: pages of 10, 10, 3


# ---- validation -----------------------------------------------------------------------------------
SHOP_ORDERS = (repo_root() / "sources" / "orders.yml").read_text()


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("limit_param: per_page", "limit_parm: per_page"),
            "sources/orders.yml: endpoints[0].paginator.limit_parm: unknown key 'limit_parm'; allowed: ",
        ),
        (
            ("kind: link_header", "kind: pages"),
            "sources/orders.yml: endpoints[0].paginator.kind: 'pages' is not allowed; allowed: 'none', 'cur",
        ),
        (
            ("    primary_key: order_id\n", ""),
            "sources/orders.yml: endpoints[0].primary_key: required key missing",
        ),
        (
            ("kind: oauth2", "kind: oauth"),
            "sources/orders.yml: auth.kind: 'oauth' is not allowed; allowed: 'none'",
        ),
        (
            ("embedded: true", "embeded: true"),
            "sources/orders.yml: embeded: unknown key 'embeded'; allowed: ",
        ),
        (
            ("sku: str", "sku: text"),
            "sources/orders.yml: endpoints[0].fields.items.sku: 'text' is not a field type",
        ),
        (
            ("incremental: updated", "incremental: {mode: updated, cursor: status, cursor_type: timestamp}"),
            "sources/orders.yml: endpoints[0].incremental.cursor_type: cursor_type timestamp needs a "
            "field of type ts; 'status' is 'str'",
        ),
        (
            ("incremental: updated", "incremental: {mode: updated, cursor: status, since_format: date}"),
            "sources/orders.yml: endpoints[0].incremental.since_format: a string cursor is sent as it is",
        ),
        (
            ("primary_key: order_id", "primary_key: [order_id, placed]"),
            "sources/orders.yml: endpoints[0].primary_key: 'placed' is not one of the fields",
        ),
        (
            ("incremental: updated", "soft_delete: {field: status, equals: 3}\n    incremental: updated"),
            "sources/orders.yml: endpoints[0].soft_delete.equals: 3 cannot be a value of the 'str' field",
        ),
        (("items: line_id", "items: line"), "sources/orders.yml: endpoints[0].children.items: needs a list"),
    ],
    ids=[
        "unknown-key",
        "bad-enum",
        "missing-key",
        "bad-auth",
        "top-level-typo",
        "field-type",
        "cursor",
        "since-format",
        "composite-key",
        "soft-delete",
        "child",
    ],
)
def test_an_invalid_source_file_names_the_file_the_key_and_what_is_allowed(
    edit: tuple[str, str], expected: str
) -> None:
    """Old code had no file at all; a Python spec with a typo (``paginater=``) failed with a bare
    TypeError, and a wrong value (``auth="none"``) only at run time with a KeyError."""
    old, new = edit
    assert old in SHOP_ORDERS
    with pytest.raises(SourceFileError) as err:
        parse(SHOP_ORDERS.replace(old, new, 1), "sources/orders.yml")
    assert str(err.value).startswith(expected), str(err.value)
    assert "\n" not in str(err.value)


def test_a_secret_in_a_source_file_is_refused_without_echoing_it() -> None:
    text = SHOP_ORDERS.replace("  token_url: /oauth/token", f"  client_secret: {SECRET}")
    with pytest.raises(SourceFileError) as err:
        parse(text, "sources/orders.yml")
    message = str(err.value)
    assert "auth.client_secret: secrets never go in a source file" in message
    assert "SOURCES__ORDERS__CLIENT_SECRET" in message
    assert SECRET not in message


def test_docs_sources_md_is_the_schema() -> None:
    """docs/sources.md is rendered from the pydantic schema: a key added, renamed or re-described
    without regenerating it (``python -m extract.sourcedoc``) fails here."""
    from extract import sourcedoc

    assert (repo_root() / "docs" / "sources.md").read_text() == sourcedoc.render()
    for model in (
        *sourcedoc._members(sourcefile.PaginatorModel),
        sourcefile.EndpointModel,
        sourcefile.SourceModel,
    ):
        for key in model.model_fields:
            assert f"| `{key}` |" in sourcedoc.render(), key


def test_the_readme_example_is_a_valid_source_file() -> None:
    """README "Add your own service" shows a plain service's file: it must validate."""
    readme = (repo_root() / "README.md").read_text()
    section = readme.split("## Add your own service", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    model = parse(block, "README.md")
    ep = model.endpoints[0]
    assert (model.auth.kind, ep.records, ep.paginator.kind) == ("none", "$", "page_number")


def test_the_shop_services_load_from_their_files_marked_embedded() -> None:
    assert sorted(SERVICES) == ["catalog", "customers", "events", "orders", "payments"]
    assert all(s.embedded for s in SERVICES.values())
    # the suites read a copy of the embedded files (tests/pytest/support/sources.py); a file of the repo's
    # own folder is named relative to the repo, as in every message
    assert load_file(repo_root() / "sources" / "orders.yml").where == "sources/orders.yml"
    assert SERVICES["orders"].endpoint("orders").paging.limit_param == "per_page"
    assert SERVICES["customers"].hard_delete_tables == ("customers", "customers__addresses")


def test_shop_sources_dir_chooses_the_set_and_a_bad_file_fails_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``SHOP_SOURCES_DIR`` picks the folder (the registry re-reads it); an invalid file fails
    ``python -m extract`` with one line naming file and key, exit 2, before anything runs."""
    (tmp_path / "plain.yml").write_text(source_text("page_number"))
    monkeypatch.setenv("SHOP_SOURCES_DIR", str(tmp_path))
    assert list(SERVICES) == ["plain"]
    assert list(load_dir(tmp_path)) == ["plain"]
    (tmp_path / "plain.yml").write_text(source_text({"kind": "page_number", "page_parm": "p"}))
    with pytest.raises(SourceFileError):
        list(SERVICES)
    proc = subprocess.run(
        [sys.executable, "-m", "extract", "plain"],
        cwd=repo_root(),
        env={**_clean_env(), "SHOP_SOURCES_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert f"{tmp_path}/plain.yml: endpoints[0].paginator.page_parm: unknown key 'page_parm'" in last
    assert "Traceback" not in proc.stderr


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "SHOP_SOURCES"))}


# ---- auth -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("server_auth", "auth", "creds"),
    [
        ("none", "none", {}),
        ("api_key", {"kind": "api_key", "header": "X-Key"}, {"api_key": SECRET}),
        ("api_key_query", {"kind": "api_key", "query_param": "X-Key"}, {"api_key": SECRET}),
        ("bearer", "bearer", {"token": SECRET}),
        ("basic", "basic", {"username": "reader", "password": SECRET}),
        (
            "oauth2",
            {"kind": "oauth2", "token_url": "/token", "scopes": ["read", "list"]},
            {
                "client_id": "reader",
                "client_secret": SECRET,
            },
        ),
    ],
    ids=["none", "api_key-header", "api_key-query", "bearer", "basic", "oauth2"],
)
def test_each_auth_kind_authenticates_every_page(
    api: tuple[Api, str], tmp_path: Path, server_auth: str, auth: Any, creds: dict[str, str]
) -> None:
    """Old code: ``none`` and ``basic`` were a KeyError, a key in a query parameter and a custom header
    name impossible, ``scopes`` not sent. ``none`` sends no credential at all (it used to need a fake
    token, which was then sent)."""
    state, url = api
    state.auth, state.style = server_auth, "page_number"
    service = service_from(
        tmp_path, source_text({"kind": "page_number", "page_param": "p", "limit_param": "size"}, auth=auth)
    )
    assert config.CREDENTIAL_KEYS[service.auth] == tuple(creds)
    assert walk_ids(service, url, creds) == ALL
    assert state.data_requests() == 3
    if server_auth == "none":
        for _, query, headers in state.hits:
            assert "Authorization" not in headers and "X-Key" not in headers and "X-API-Key" not in headers
            assert "X-Key" not in query
    if server_auth == "oauth2":
        assert state.scopes_seen == ["read list"]
    assert SECRET not in repr(
        make_client(service, ServiceConfig("plain", url, creds, config.tuning("plain"))).auth
    )


def test_a_refused_credential_fails_at_once_without_the_secret(api: tuple[Api, str], tmp_path: Path) -> None:
    state, url = api
    state.auth = "api_key_query"
    service = service_from(
        tmp_path,
        source_text(
            {"kind": "page_number", "page_param": "p", "limit_param": "size"},
            auth={"kind": "api_key", "query_param": "X-Key"},
        ),
    )
    with pytest.raises(FetchError) as err:
        walk_ids(service, url, {"api_key": "wrong-" + SECRET})
    assert "last status 401" in str(err.value)
    assert f"[{url}/items]" in str(err.value)  # the URL without its query: the key is not in it
    assert SECRET not in str(err.value)


# ---- records --------------------------------------------------------------------------------------
@pytest.mark.parametrize("records", ["$", "data", "results", "items", "payload.page.items"])
def test_records_at_the_body_or_any_path(api: tuple[Api, str], tmp_path: Path, records: str) -> None:
    """Old code read ``data`` only: a bare array was "malformed JSON body ... truncated?" (retried five
    times), ``results``/``items``/a nested path "body has no 'data' key"."""
    state, url = api
    state.records, state.style = records, "page_number"
    service = service_from(
        tmp_path,
        source_text({"kind": "page_number", "page_param": "p", "limit_param": "size"}, records=records),
    )
    assert walk_ids(service, url) == ALL


def test_a_bare_array_where_an_envelope_was_declared_says_which_records_to_set(
    api: tuple[Api, str], tmp_path: Path
) -> None:
    state, url = api
    state.records = "$"
    service = service_from(
        tmp_path,
        source_text({"kind": "page_number", "page_param": "p", "limit_param": "size"}, records="data"),
    )
    with pytest.raises(FetchError) as err:
        walk_ids(service, url)
    message = str(err.value)
    assert "failed after 1 attempt(s)" in message  # the same URL sends the same shape: not retried
    assert "the body is a JSON array, not an object with the records at 'data': set records: $" in message
    assert "check the endpoint's records in" in message and "plain.yml" in message
    assert state.data_requests() == 1


# ---- pagination -----------------------------------------------------------------------------------
STYLES: dict[str, tuple[dict[str, Any], dict[str, Any], int]] = {
    # id: (server settings, paginator of the file, data requests)
    "none": ({"style": "none"}, {"kind": "none", "limit_param": None}, 1),
    "cursor": (
        {"style": "cursor", "records": "data"},
        {"kind": "cursor", "cursor_path": "paging.token", "cursor_param": "token", "limit_param": "size"},
        3,
    ),
    "offset-total-in-body": (
        {"style": "offset", "records": "data", "total": "meta.count"},
        {"kind": "offset", "limit_param": "size", "total_path": "meta.count"},
        3,
    ),
    "offset-total-header": (
        {"style": "offset", "total": "header"},
        {"kind": "offset", "limit_param": "size", "total_path": None, "total_header": "X-Total-Count"},
        3,
    ),
    "offset-short-page": (
        {"style": "offset"},
        {"kind": "offset", "limit_param": "size", "total_path": None},
        3,
    ),
    "page-number-short-page": ({}, {"kind": "page_number", "page_param": "p", "limit_param": "size"}, 3),
    "page-number-from-0": (
        {"first_page": 0},
        {"kind": "page_number", "page_param": "p", "first_page": 0, "limit_param": "size"},
        3,
    ),
    "page-number-empty-page": (
        {},
        {"kind": "page_number", "page_param": "p", "limit_param": "size", "stop_on_short_page": False},
        4,
    ),
    "page-number-total-pages": (
        {"records": "data", "total_pages_path": "pages", "rows": 20},
        {"kind": "page_number", "page_param": "p", "limit_param": "size", "total_pages_path": "pages"},
        2,
    ),
    "page-number-total-header": (
        {"total": "header", "rows": 20},
        {"kind": "page_number", "page_param": "p", "limit_param": "size", "total_header": "X-Total-Count"},
        2,
    ),
    "link-header": ({"style": "link_header"}, {"kind": "link_header", "limit_param": "size"}, 3),
    "json-link": (
        {"style": "json_link", "records": "data"},
        {"kind": "json_link", "next_path": "next", "limit_param": "size"},
        3,
    ),
    "id-cursor": (
        {"style": "id_cursor", "records": "data"},
        {
            "kind": "id_cursor",
            "has_more_path": "more",
            "next_id_path": "last",
            "after_param": "after_id",
            "limit_param": "size",
        },
        3,
    ),
}


@pytest.mark.parametrize("style", list(STYLES))
def test_each_pagination_style_walks_every_record_once(
    api: tuple[Api, str], tmp_path: Path, style: str
) -> None:
    """Old code: no ``page_number``/``none`` style, and every body path and parameter name was fixed to
    the shop's (``next_cursor``, ``links.next``, ``total``, ``has_more``, ``offset``)."""
    state, url = api
    server, paginator, requests = STYLES[style]
    for key, value in server.items():
        setattr(state, key, value)
    records = server.get("records", "$")
    service = service_from(tmp_path, source_text(paginator, records=records))
    assert walk_ids(service, url) == list(range(1, state.rows + 1))
    assert state.data_requests() == requests


@pytest.mark.parametrize(
    ("server", "paginator"),
    [
        (
            {"style": "link_header", "total": "header"},
            {"kind": "link_header", "limit_param": "size", "total_header": "X-Total-Count"},
        ),
        (
            {"style": "json_link", "records": "data", "total": "total"},
            {"kind": "json_link", "next_path": "next", "limit_param": "size", "total_path": "total"},
        ),
        (
            {"style": "cursor", "records": "data", "total": "count"},
            {
                "kind": "cursor",
                "cursor_path": "paging.token",
                "cursor_param": "token",
                "limit_param": "size",
                "total_path": "count",
            },
        ),
    ],
    ids=["link-header+X-Total-Count", "json-link+body-total", "cursor+body-total"],
)
def test_a_walk_that_ends_short_of_the_reported_total_fails(
    api: tuple[Api, str], tmp_path: Path, server: dict[str, Any], paginator: dict[str, Any]
) -> None:
    """The issue's silent loss: the server stops naming a next page (one pagination key wrong, a
    proxy dropping the ``Link`` header) while it reports the total. Old code loaded the first page,
    exited 0 and advanced the cursor."""
    state, url = api
    for key, value in server.items():
        setattr(state, key, value)
    state.drop_next_after = 1
    service = service_from(tmp_path, source_text(paginator, records=server.get("records", "$")))
    with pytest.raises(ShortWalk) as err:
        walk_ids(service, url)
    message = str(err.value)
    assert message.startswith(
        "plain items: the API reported 23 records but the walk ended after 10 in 1 page(s)"
    )
    assert f"paginator.kind = {paginator['kind']!r}" in message and "plain.yml" in message


def test_more_records_than_the_total_is_fine(api: tuple[Api, str], tmp_path: Path) -> None:
    """Records added during the walk: walked >= total passes."""
    state, url = api
    state.style, state.total, state.total_shift = "link_header", "header", -5
    service = service_from(
        tmp_path, source_text({"kind": "link_header", "limit_param": "size", "total_header": "X-Total-Count"})
    )
    assert walk_ids(service, url) == ALL


def test_a_full_first_page_without_a_next_page_is_a_warning(
    api: tuple[Api, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state, url = api
    state.style, state.records, state.drop_next_after = "json_link", "data", 1
    service = service_from(
        tmp_path,
        source_text({"kind": "json_link", "next_path": "links.next", "limit_param": "size"}, records="data"),
    )
    with caplog.at_level(logging.WARNING, logger="extract.paginators"):
        assert walk_ids(service, url) == list(range(1, 11))
    warned = [r.getMessage() for r in caplog.records if "first page was full" in r.getMessage()]
    assert warned, caplog.text
    assert "plain items: the first page was full (10 records = the page size)" in warned[0]
    assert "paginator.next_path = 'links.next'" in warned[0]


def test_a_server_that_ignores_the_page_parameter_fails_instead_of_looping(
    api: tuple[Api, str], tmp_path: Path
) -> None:
    state, url = api
    state.ignore_page = True
    service = service_from(
        tmp_path, source_text({"kind": "page_number", "page_param": "p", "limit_param": "size"})
    )
    with pytest.raises(UnsafePagination, match="page 2 starts with the same record as page 1"):
        walk_ids(service, url)
    assert state.data_requests() == 2


def test_a_next_link_to_another_origin_is_never_requested(api: tuple[Api, str], tmp_path: Path) -> None:
    state, url = api
    foreign = Api()
    with fault_server(foreign.answer) as other:
        state.style, state.records, state.auth = "json_link", "data", "bearer"
        state.next_url = f"{other.url}/items?at=10"  # type: ignore[attr-defined]
        service = service_from(
            tmp_path,
            source_text(
                {"kind": "json_link", "next_path": "next", "limit_param": "size"},
                records="data",
                auth="bearer",
            ),
        )
        with pytest.raises(UnsafePagination, match="not the service's own origin"):
            walk_ids(service, url, {"token": SECRET})
    assert foreign.hits == []


# ---- end to end: a plain service through the loader ----------------------------------------------
@pytest.fixture
def plain_loader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api: tuple[Api, str]
) -> Iterator[tuple[Api, Path]]:
    """The loader, in this process, pointed at a sources folder holding only ``plain.yml``."""

    state, url = api
    folder = tmp_path / "sources"
    folder.mkdir()
    wh = use_loader_project(tmp_path, monkeypatch, folder, SOURCES__PLAIN__BASE_URL=url)
    monkeypatch.setenv("SOURCES__PLAIN__PAGE_SIZE", "10")  # pages of 10, 10, 3 (the knob, per service)
    yield state, wh


README_SOURCE = """\
auth: none
endpoints:
  - name: items
    path: /items
    primary_key: id
    records: $                     # the body is the JSON array
    paginator:
      kind: page_number
      page_param: p
      limit_param: size
      total_header: X-Total-Count
    incremental: updated           # ?updated_since=..., merge on id
    fields: {id: int, updated_at: ts, name: str}
"""


def _loaded(wh: Path) -> list[int]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return [r[0] for r in con.execute("select id from raw_plain.items order by id").fetchall()]
    finally:
        con.close()


def test_a_plain_service_loads_with_zero_python_and_a_short_walk_loads_nothing(
    plain_loader: tuple[Api, Path], tmp_path: Path
) -> None:
    """A service with no auth, a bare JSON array, page numbers and ``X-Total-Count`` (the README's
    example file) loads through ``extract.runner.run``; a re-run loads nothing. A run whose walk ends
    short of the total fails naming endpoint, total and walked, loads nothing and keeps the cursor:
    the next good run loads the records the failed one missed."""
    from extract.runner import run

    state, wh = plain_loader
    state.total, state.rows = "header", 23
    (tmp_path / "sources" / "plain.yml").write_text(README_SOURCE)
    first = run(["plain"])
    assert first.failures == {}
    assert _loaded(wh) == ALL
    again = run(["plain"])
    assert again.failures == {} and again.rows == 0

    state.rows, state.drop_next_after = 40, 1  # 17 new records; the server stops naming page 2
    short = run(["plain"])
    assert "plain items: the API reported" in short.failures["plain"]
    assert "(incremental state not advanced)" in short.failures["plain"]
    assert short.rows == 0
    assert _loaded(wh) == ALL  # nothing of the short walk
    state.drop_next_after = None
    fixed = run(["plain"])
    assert fixed.failures == {}
    assert _loaded(wh) == list(range(1, 41))
