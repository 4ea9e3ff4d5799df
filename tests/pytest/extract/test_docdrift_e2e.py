"""Drift before load, end to end: a small service on 127.0.0.1 that publishes an OpenAPI document, a
source file ``init`` wrote from that document, and the loader (``extract.runner.run``, in-process, a
real DuckDB warehouse).

When the document loses, renames or retypes a field, the run fails that service with one line naming
endpoint and field and what to do, and the server sees no data request at all; a field the document
adds is reported and the load goes on. The matching document loads as usual.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from extract.scaffold import cli
from tests.pytest.extract.faultserver import fault_server
from tests.pytest.support.envs import use_loader_project

RECORDS = [
    {"id": i, "name": f"n{i}", "amount": i * 2, "updated_at": f"2026-01-01T00:00:{i:02d}.000000Z"}
    for i in range(1, 8)
]
DOC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "drifty"},
    "paths": {
        "/items": {
            "get": {
                "responses": {
                    "200": {
                        "description": "every item",
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}}
                            }
                        },
                    }
                }
            }
        }
    },
    "components": {
        "schemas": {
            "Item": {
                "type": "object",
                "required": ["id", "name", "amount", "updated_at"],
                "properties": {
                    "id": {"type": "integer"},
                    "name": {"type": "string"},
                    "amount": {"type": "integer"},
                    "updated_at": {"type": "string", "format": "date-time"},
                },
            }
        }
    },
}


class Service:
    """The service: its document (changed by the tests) and its records; every request recorded."""

    def __init__(self) -> None:
        self.doc = copy.deepcopy(DOC)
        self.doc_status = 200
        self.paths: list[str] = []
        self.lock = threading.Lock()

    def answer(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        with self.lock:
            self.paths.append(path)
        if path == "/openapi.json" and self.doc_status != 200:
            h.send_response(self.doc_status)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if path == "/openapi.json":
            body = orjson.dumps(self.doc)
        elif path == "/items":
            body = orjson.dumps(RECORDS)
        else:
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def data_requests(self) -> int:
        with self.lock:
            return sum(1 for p in self.paths if p == "/items")

    @property
    def item(self) -> dict[str, Any]:
        return self.doc["components"]["schemas"]["Item"]["properties"]


@pytest.fixture
def drifty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Service, Path]]:
    """The service, ``sources/drifty.yml`` written by ``init`` from its document URL, and the loader
    (in this process) pointed at a folder holding only that file."""
    state = Service()
    with fault_server(state.answer) as srv:
        url = srv.url  # type: ignore[attr-defined]
        folder = tmp_path / "sources"
        argv = [
            "drifty",
            "--openapi",
            f"{url}/openapi.json",
            "--sources-dir",
            str(folder),
            "--dbt-project",
            str(tmp_path),
        ]
        assert cli.main(argv) == 0
        state.paths.clear()  # init read the document; the runs start from here
        wh = use_loader_project(tmp_path, monkeypatch, folder, SOURCES__DRIFTY__BASE_URL=url)
        yield state, wh


def _rows(wh: Path) -> int:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute("select count(*) from raw_drifty.items").fetchone()[0]
    finally:
        con.close()


def test_the_file_init_wrote_checks_the_document_and_loads(drifty: tuple[Service, Path]) -> None:
    from extract.runner import run
    from extract.sources import SERVICES

    state, wh = drifty
    assert SERVICES["drifty"].openapi == "/openapi.json"
    result = run(["drifty"])
    assert result.failures == {}
    assert state.paths[0] == "/openapi.json" and state.data_requests() == 1
    assert _rows(wh) == len(RECORDS)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("lose", "items field name is gone from the document"),
        ("rename", "items field name is gone from the document (renamed to title?)"),
        ("retype", "items field amount is declared int but the document says str"),
    ],
)
def test_a_lost_renamed_or_retyped_field_fails_before_any_data_request(
    drifty: tuple[Service, Path], change: str, named: str
) -> None:
    from extract.runner import run

    state, wh = drifty
    if change in ("lose", "rename"):
        del state.item["name"]
    if change == "rename":
        state.item["title"] = {"type": "string"}
    if change == "retype":
        state.item["amount"] = {"type": "string"}
    result = run(["drifty"])
    assert state.data_requests() == 0, state.paths  # the document only
    assert state.paths == ["/openapi.json"]
    message = result.failures["drifty"]
    assert "\n" not in message
    assert message.startswith("drifty: the OpenAPI document http://127.0.0.1:")
    assert (
        f"/openapi.json no longer matches {Path(os.environ['SHOP_SOURCES_DIR']) / 'drifty.yml'}: {named}."
        in message
    )
    assert "No data was requested. Edit" in message and "python -m extract init drifty --openapi" in message
    assert not wh.exists() or _rows_or_none(wh) is None


def _rows_or_none(wh: Path) -> int | None:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        found = con.execute(
            "select count(*) from information_schema.tables"
            " where table_schema = 'raw_drifty' and table_name = 'items'"
        ).fetchone()[0]
        return con.execute("select count(*) from raw_drifty.items").fetchone()[0] if found else None
    finally:
        con.close()


def test_an_added_field_is_reported_and_the_load_goes_on(
    drifty: tuple[Service, Path], caplog: pytest.LogCaptureFixture
) -> None:
    from extract.runner import run

    state, wh = drifty
    state.item["priority"] = {"type": "integer"}
    with caplog.at_level(logging.WARNING, logger="extract.docdrift"):
        result = run(["drifty"])
    assert result.failures == {}
    warned = [r.getMessage() for r in caplog.records if r.name == "extract.docdrift"]
    assert len(warned) == 1 and "has field(s) items.priority (int) not in " in warned[0], warned
    assert state.data_requests() == 1 and _rows(wh) == len(RECORDS)


def test_a_wrong_document_path_fails_the_service_naming_the_key(drifty: tuple[Service, Path]) -> None:
    from extract.runner import run

    state, _ = drifty
    path = Path(os.environ["SHOP_SOURCES_DIR"]) / "drifty.yml"
    path.write_text(path.read_text().replace("openapi: /openapi.json", "openapi: /docs.json"))
    result = run(["drifty"])
    message = result.failures["drifty"]
    assert "OpenAPI document http://127.0.0.1:" in message and "/docs.json not fetched: HTTP 404" in message
    assert "check `openapi` in" in message and state.data_requests() == 0


def test_a_document_the_service_cannot_serve_is_a_warning_and_the_pages_decide(
    drifty: tuple[Service, Path], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 503 from the document (after the retry budget): the run goes on and the pages are checked one
    by one; a service that is down altogether fails on its data requests with the loader's own advice
    (tests/pytest/extract/test_http_bounds.py::test_connection_refused_names_the_url_and_what_to_check)."""
    from extract.runner import run

    monkeypatch.setenv("SOURCES__EXTRACT__MAX_ATTEMPTS", "2")
    monkeypatch.setenv("SOURCES__EXTRACT__BACKOFF_BASE", "0.05")
    state, wh = drifty
    state.doc_status = 503
    with caplog.at_level(logging.WARNING, logger="extract.docdrift"):
        result = run(["drifty"])
    assert result.failures == {} and _rows(wh) == len(RECORDS)
    assert state.paths.count("/openapi.json") == 2
    warned = [r.getMessage() for r in caplog.records if r.name == "extract.docdrift"]
    assert len(warned) == 1 and "not reached (HTTP 503 after 2 attempt(s)): no check before load" in warned[0]
