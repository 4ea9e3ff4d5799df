"""``python -m extract init`` and the drift check, at unit level (no load, no dbt).

The strongest case first: the shop's five FastAPI services publish their OpenAPI documents, and the
five source files in ``sources/`` were written by hand; ``init`` guessing from the documents alone must
arrive at the same endpoints, keys, paging, incremental modes and fields. Then hand-written documents
and sample answers in other teams' conventions (bare arrays, page numbers, ``Link`` and
``X-Total-Count``, ``results`` + ``next``, Swagger 2), what a guess says about itself, what cannot be
declared, and the comparison of a document with a source file that decides drift before a load.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.settings import repo_root
from extract import docdrift, openapi
from extract.scaffold import cli, guess, render, sample
from extract.sourcefile import load_file, parse, to_service
from extract.spec import Service

SHOP = ("customers", "catalog", "orders", "payments", "events")
ENDPOINT_KEYS = (
    "name",
    "path",
    "primary_key",
    "records",
    "paginator",
    "incremental",
    "fields",
    "children",
    "loose",
)


@pytest.fixture(scope="module")
def shop_documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The five services' OpenAPI documents as FastAPI renders them (the apps built in a child process
    with placeholder secrets: rendering a document touches no data)."""
    run = tmp_path_factory.mktemp("docs-run")
    env = {"PATH": "/usr/bin:/bin", "SHOP_RUN_DIR": str(run), "SHOP_ADMIN_TOKEN": "x"}
    for name, keys in {
        "CUSTOMERS": ("API_KEY",),
        "CATALOG": ("TOKEN",),
        "ORDERS": ("CLIENT_ID", "CLIENT_SECRET"),
        "PAYMENTS": ("API_KEY",),
        "EVENTS": ("TOKEN",),
    }.items():
        env.update({f"SHOP_{name}_{k}": "placeholder" for k in keys})
    code = (
        "import importlib, json\n"
        "docs = {n: importlib.import_module(f'services.{n}.app').app.openapi() for n in NAMES}\n"
        "print(json.dumps(docs))"
    ).replace("NAMES", repr(SHOP))
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=repo_root(), env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def _model_of(text: str, name: str) -> dict[str, Any]:
    """The validated file as plain data (what the loader sees)."""
    return parse(text, f"{name}.yml").model_dump()


@pytest.mark.parametrize("name", SHOP)
def test_init_from_each_shop_document_arrives_at_the_hand_written_source_file(
    shop_documents: dict[str, dict[str, Any]], name: str
) -> None:
    """Endpoints, paths, keys, records, paginator (kind and keys), incremental mode, fields and their
    types, child tables and loose objects: all as in sources/<name>.yml, from the document alone.
    (The events feed's ``params: {wait: 0}`` is a choice of the loader, not of the document.)"""
    url = "http://127.0.0.1:8100/openapi.json"
    draft = guess.from_document(shop_documents[name], name, "test", url, None)
    got = _model_of(render.source_file(draft), name)
    want = yaml.safe_load((repo_root() / "sources" / f"{name}.yml").read_text())
    want = parse(yaml.safe_dump(want), f"{name}.yml").model_dump()
    assert got["auth"] == want["auth"]
    assert got["openapi"] == "/openapi.json" == want["openapi"]
    assert [ep["name"] for ep in got["endpoints"]] == [ep["name"] for ep in want["endpoints"]]
    for mine, theirs in zip(got["endpoints"], want["endpoints"], strict=True):
        for key in ENDPOINT_KEYS:
            assert mine[key] == theirs[key], (name, mine["name"], key)


def test_every_guess_is_marked_and_the_shop_erasure_feed_is_offered_commented_out(
    shop_documents: dict[str, dict[str, Any]],
) -> None:
    draft = guess.from_document(shop_documents["customers"], "crm", "test", None, "http://127.0.0.1:9")
    text = render.source_file(draft)
    lines = text.splitlines()
    for key in ("primary_key:", "paginator:", "incremental:", "children:"):
        at = [i for i, line in enumerate(lines) if line.strip().startswith(key)]
        assert at and all(lines[i - 1].strip().startswith("# GUESS:") for i in at), key
    # a delete feed is never switched on by a guess: hard_deletes stays a comment
    assert "\n# hard_deletes:\n#   feed: deletions\n#   tables: [customers, customers__addresses]" in text
    assert parse(text, "crm.yml").hard_deletes is None
    # from a file (no URL): no openapi key, a comment saying how to turn the check on
    assert parse(text, "crm.yml").openapi is None and "# openapi: /openapi.json" in text
    assert (
        "SOURCES__CRM__API_KEY" in text and "# Base URL (http://127.0.0.1:9): SOURCES__CRM__BASE_URL" in text
    )


PLAIN_DOC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "Tickets"},
    "servers": [{"url": "https://tickets.example.test/api"}],
    "security": [],
    "paths": {
        "/tickets": {
            "get": {
                "parameters": [
                    {"name": "_page", "in": "query", "schema": {"type": "integer"}},
                    {"name": "_limit", "in": "query", "schema": {"type": "integer", "maximum": 100}},
                    {"name": "updated_at_gte", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {
                        "description": "ok",
                        "headers": {"X-Total-Count": {"schema": {"type": "integer"}}},
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/Ticket"}}
                            }
                        },
                    }
                },
            }
        },
        "/tickets/{id}": {"get": {"responses": {"200": {"description": "one"}}}},
        "/health": {"get": {"responses": {"200": {"description": "ok"}}}},
    },
    "components": {
        "schemas": {
            "Ticket": {
                "type": "object",
                "required": ["id", "subject"],
                "properties": {
                    "id": {"type": "integer"},
                    "subject": {"type": "string", "description": "What the ticket is about."},
                    "score": {"type": ["number", "null"]},
                    "open": {"type": "boolean"},
                    "updated_at": {"type": "string", "format": "date-time"},
                    "assignee": {"anyOf": [{"$ref": "#/components/schemas/Person"}, {"type": "null"}]},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "extra": {"type": "object", "additionalProperties": True},
                    "createdAt": {"type": "string"},
                    "comments": {
                        "type": "array",
                        "items": {
                            "allOf": [
                                {"type": "object", "properties": {"comment_id": {"type": "integer"}}},
                                {"type": "object", "properties": {"body": {"type": "string"}}},
                            ]
                        },
                    },
                },
            },
            "Person": {
                "type": "object",
                "required": ["person_id"],
                "properties": {"person_id": {"type": "integer"}, "name": {"type": "string"}},
            },
        }
    },
}


def test_a_bare_array_with_page_numbers_and_a_total_header() -> None:
    """json-server's conventions described by a document: the body is the list, ``_page``/``_limit``,
    ``X-Total-Count``; the server's base path is part of the endpoint path; a string ``*_gte``
    parameter is a lower bound on the timestamp; the limit's maximum is the page size."""
    draft = guess.from_document(PLAIN_DOC, "helpdesk", "test", None, None)
    model = parse(render.source_file(draft), "helpdesk.yml")
    assert draft.base_url == "https://tickets.example.test"
    assert model.auth.kind == "none"
    (ep,) = model.endpoints
    assert (ep.name, ep.path, ep.records, ep.primary_key) == ("tickets", "/api/tickets", "$", "id")
    assert ep.paginator.model_dump() == {
        "kind": "page_number",
        "page_param": "_page",
        "limit_param": "_limit",
        "first_page": 1,
        "stop_on_short_page": True,
        "total_pages_path": None,
        "total_path": None,
        "total_header": "X-Total-Count",
    }
    assert ep.incremental.model_dump() == {
        "mode": "updated",
        "cursor": "updated_at",
        "since_param": "updated_at_gte",
        # the cursor's type follows its field, sent as the API sent it, with the run's default lag
        "cursor_type": None,
        "since_format": "raw",
        "lag": None,
    }
    assert ep.page_size == 100
    assert ep.fields == {
        "id": "int",
        "subject": "str",
        "score": "float",
        "open": "bool",
        "updated_at": "ts",
        "assignee": {"person_id": "int", "name": "str"},
        "comments": [{"comment_id": "int", "body": "str"}],
    }
    assert ep.children == {"comments": "comment_id"}
    text = render.source_file(draft)
    for left_out in ("tags: a list of scalars", "extra: free-form", "createdAt: its name is not"):
        assert left_out in text, left_out
    assert draft.endpoints[0].descriptions["subject"] == "What the ticket is about."


def test_swagger_2_results_envelope_with_a_next_url_and_each_auth_kind() -> None:
    doc = {
        "swagger": "2.0",
        "basePath": "/v2",
        "securityDefinitions": {"key": {"type": "apiKey", "in": "query", "name": "api_key"}},
        "paths": {
            "/people": {
                "get": {
                    "parameters": [{"name": "page_size", "in": "query", "type": "integer"}],
                    "responses": {
                        "200": {
                            "description": "ok",
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "count": {"type": "integer"},
                                    "next": {"type": "string", "format": "uri"},
                                    "results": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": {
                                                "person_id": {"type": "integer"},
                                                "born": {"type": "string", "format": "date"},
                                            },
                                        },
                                    },
                                },
                            },
                        }
                    },
                }
            }
        },
    }
    model = parse(render.source_file(guess.from_document(doc, "hr", "t", None, "http://x")), "hr.yml")
    assert model.auth.model_dump() == {"kind": "api_key", "header": "X-API-Key", "query_param": "api_key"}
    (ep,) = model.endpoints
    assert (ep.path, ep.records, ep.primary_key) == ("/v2/people", "results", "person_id")
    assert ep.paginator.model_dump() == {
        "kind": "json_link",
        "next_path": "next",
        "limit_param": "page_size",
        "total_path": "count",
        "total_header": None,
    }
    assert ep.incremental.mode == "snapshot" and ep.fields == {"person_id": "int", "born": "ts"}
    schemes = {
        "basic": ({"type": "http", "scheme": "basic"}, "basic"),
        "bearer": ({"type": "http", "scheme": "bearer"}, "bearer"),
        "oauth2": (
            {
                "type": "oauth2",
                "flows": {"clientCredentials": {"tokenUrl": "https://id.test/token", "scopes": {"r": ""}}},
            },
            "oauth2",
        ),
    }
    for scheme, kind in schemes.values():
        three = {
            **PLAIN_DOC,
            "security": [{"s": []}],
            "components": {**PLAIN_DOC["components"], "securitySchemes": {"s": scheme}},
        }
        draft = guess.from_document(three, "h", "t", None, "http://x")
        assert parse(render.source_file(draft), "h.yml").auth.kind == kind
    assert "scopes offered: r" in (draft.auth.note or "")


def test_a_document_with_no_collection_says_so() -> None:
    doc = {"openapi": "3.0.0", "paths": {"/health": {"get": {"responses": {"200": {"description": "ok"}}}}}}
    with pytest.raises(
        openapi.DocumentError, match="no GET operation without path parameters answers a list"
    ):
        guess.from_document(doc, "x", "init x", None, None)
    with pytest.raises(openapi.DocumentError, match="not an OpenAPI document"):
        openapi.parse_document(b'{"swagger": 2}', "d.json")


# ---- samples --------------------------------------------------------------------------------------
def _ticket(i: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": i,
        "subject": f"s{i}",
        "score": i / 2,
        "open": i % 2 == 0,
        "updated_at": f"2025-01-01T00:00:{i:02d}.000000Z",
        "closed_at": None,
        "owner": {"name": "a", "team": "b"},
        "lines": [{"line_id": i * 10, "qty": 1}],
        **extra,
    }


def test_a_sample_bare_array_with_link_header_and_total() -> None:
    """json-server's answer to ``?_page=1&_limit=3``."""
    url = "http://127.0.0.1:3000/orders?_page=1&_limit=3"
    headers = {
        "X-Total-Count": "23",
        "Link": '<http://127.0.0.1:3000/orders?_page=2&_limit=3>; rel="next",'
        ' <http://127.0.0.1:3000/orders?_page=8&_limit=3>; rel="last"',
    }
    ep = sample.endpoint_draft(url, json.dumps([_ticket(i) for i in (1, 2, 3)]).encode(), headers)
    assert (ep.name, ep.path, ep.records.value, ep.primary_key.value) == ("orders", "/orders", "$", "id")
    assert ep.paginator.value == {
        "kind": "link_header",
        "limit_param": "_limit",
        "total_header": "X-Total-Count",
    }
    assert ep.params.value == {"_page": 1}
    assert ep.fields == {
        "id": "int",
        "subject": "str",
        "score": "float",
        "open": "bool",
        "updated_at": "ts",
        "closed_at": "str",
        "owner": {"name": "str", "team": "str"},
        "lines": [{"line_id": "int", "qty": "int"}],
    }
    assert ep.children.value == {"lines": "line_id"}
    assert ep.field_notes["closed_at"] == "null in every sample record: type unknown"
    assert ep.incremental.value == "snapshot" and "cursor: updated_at" in (ep.incremental.note or "")


def test_a_sample_envelope_with_a_next_url_a_token_or_an_offset() -> None:
    """datasette's answer (``rows``, ``next`` + ``next_url``, ``filtered_table_rows_count``), a cursor
    token without a URL, and an offset walk."""
    body = {
        "database": "t",
        "rows": [_ticket(1), _ticket(2)],
        "columns": ["id", "subject"],
        "filtered_table_rows_count": 2500,
        "next": "2",
        "next_url": "http://127.0.0.1:8001/t/tickets.json?_shape=objects&_size=2&_next=2",
        "query": {"sql": "select ..."},
    }
    url = "http://127.0.0.1:8001/t/tickets.json?_shape=objects&_size=2"
    ep = sample.endpoint_draft(url, json.dumps(body).encode(), {"Link": '<...>; rel="next"'})
    assert (ep.name, ep.records.value, ep.primary_key.value) == ("tickets", "rows", "id")
    assert ep.paginator.value == {
        "kind": "json_link",
        "next_path": "next_url",
        "limit_param": "_size",
        "total_path": "filtered_table_rows_count",
    }
    assert ep.params.value == {"_shape": "objects"}
    token = {"data": [_ticket(1)], "meta": {"next_cursor": "abc"}}
    ep = sample.endpoint_draft("http://h/v1/items?limit=1", json.dumps(token).encode(), {})
    assert ep.paginator.value["kind"] == "cursor" and ep.paginator.value["cursor_path"] == "meta.next_cursor"
    assert "GUESS: set cursor_param" in (ep.paginator.note or "")
    offset = {"items": [_ticket(1)], "total": 7}
    ep = sample.endpoint_draft("http://h/items?offset=0&limit=1", json.dumps(offset).encode(), {})
    assert ep.paginator.value["kind"] == "offset" and ep.paginator.value["total_path"] == "total"


def test_a_sample_that_holds_no_records_is_refused_with_what_it_holds() -> None:
    with pytest.raises(
        sample.SampleError, match=r"no non-empty list of objects in the body \(keys: status, n\)"
    ):
        sample.endpoint_draft("http://h/x", b'{"status": "ok", "n": 1}', {})
    with pytest.raises(sample.SampleError, match="not JSON"):
        sample.endpoint_draft("http://h/x", b"<html>", {})


def test_init_writes_nothing_when_a_file_exists_and_force_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    doc = tmp_path / "openapi.json"
    doc.write_text(json.dumps(PLAIN_DOC))
    args = [
        "helpdesk",
        "--openapi",
        str(doc),
        "--sources-dir",
        str(tmp_path / "src"),
        "--dbt-project",
        str(tmp_path / "dbt"),
    ]
    assert cli.main(args) == 0
    written = sorted(
        p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file() and p != doc
    )
    assert written == [
        "dbt/models/staging/helpdesk/_helpdesk__models.yml",
        "dbt/models/staging/helpdesk/_helpdesk__sources.yml",
        "dbt/models/staging/helpdesk/stg_helpdesk__tickets.sql",
        "dbt/models/staging/helpdesk/stg_helpdesk__tickets_comments.sql",
        "src/helpdesk.yml",
    ]
    out = capsys.readouterr().out
    assert (
        "guesses marked '# GUESS:'" in out
        and "export SOURCES__HELPDESK__BASE_URL=https://tickets.example.test" in out
    )
    service = load_file(tmp_path / "src" / "helpdesk.yml")  # what the loader reads
    assert service.endpoint("tickets").children == {"comments": "comment_id"}
    model = tmp_path / "dbt/models/staging/helpdesk/stg_helpdesk__tickets.sql"
    model.write_text("-- edited by hand\n")
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("init helpdesk: ") and "already exist(s); nothing written (--force overwrites)" in err
    )
    assert "\n" not in err.strip()
    assert model.read_text() == "-- edited by hand\n"
    assert cli.main([*args, "--force"]) == 0
    assert "committed_loads('helpdesk')" in model.read_text()


def test_generated_dbt_files_list_every_column_and_follow_the_loaded_sources(tmp_path: Path) -> None:
    """Explicit columns (nested objects flattened as dlt names them), the shop's macros, the key tests,
    and ``enabled`` tied to SHOP_SOURCE_NAMES (transform/dbt_runner.py sets it to the loaded sources)."""
    from extract.scaffold import dbtfiles

    draft = guess.from_document(PLAIN_DOC, "helpdesk", "t", None, None)
    service = to_service("helpdesk", parse(render.source_file(draft), "helpdesk.yml"), "sources/helpdesk.yml")
    files = {p.name: t for p, t in dbtfiles.render(service, {"tickets": {}}, "Tickets").items()}
    sql = files["stg_helpdesk__tickets.sql"]
    assert "select *\n    from {{ source_or_empty('helpdesk', 'tickets', {" in sql
    assert "where {{ committed_loads('helpdesk') }}" in sql
    for line in (
        "cast(id as bigint) as id,",
        "cast({{ column_or_null(raw, 'subject') }} as {{ dbt.type_string() }}) as subject,",
        "{{ to_utc(column_or_null(raw, 'updated_at')) }} as updated_at,",
        "cast({{ column_or_null(raw, 'assignee__person_id') }} as bigint) as assignee__person_id,",
        "cast(_dlt_load_id as {{ dbt.type_string() }}) as load_id",
        "order by updated_at desc, {{ load_order('load_id') }} desc",
    ):
        assert line in sql, line
    assert '"open"' not in sql  # not a reserved word in DuckDB: unquoted
    assert "varchar)" not in sql and "timestamptz)" not in sql  # casts Spark knows too (issue 16)
    child = files["stg_helpdesk__tickets_comments.sql"]
    assert "partition by id, comment_id" in child
    sources = yaml.safe_load(files["_helpdesk__sources.yml"])["sources"][0]
    assert (
        sources["config"]["enabled"]
        == "{{ 'helpdesk' in env_var('SHOP_SOURCE_NAMES', 'helpdesk').split(',') }}"
    )
    tables = {t["name"]: t for t in sources["tables"]}
    assert tables["tickets"]["data_tests"] == [{"row_drop_guard": {"arguments": {"key_column": "id"}}}]
    assert [c["name"] for c in tables["tickets__comments"]["columns"]] == [
        "id",
        "comment_id",
        "body",
        "_dlt_load_id",
    ]
    models = {m["name"]: m for m in yaml.safe_load(files["_helpdesk__models.yml"])["models"]}
    assert models["stg_helpdesk__tickets"]["columns"][0]["data_tests"] == ["unique", "not_null"]
    assert models["stg_helpdesk__tickets_comments"]["data_tests"] == [
        {"unique_combination": {"arguments": {"columns": ["id", "comment_id"]}}}
    ]


def test_a_column_named_like_a_reserved_word_is_quoted_the_engines_way(tmp_path: Path) -> None:
    """``adapter.quote`` (DuckDB ``"order"``, Spark a backtick): a double-quoted name would be a string
    literal on Spark (issue 16). The stand-in's column map stays plain: source_or_empty quotes it."""
    import copy

    from extract.scaffold import dbtfiles

    doc = copy.deepcopy(PLAIN_DOC)
    doc["components"]["schemas"]["Ticket"]["properties"]["order"] = {"type": "integer"}
    draft = guess.from_document(doc, "helpdesk", "t", None, None)
    service = to_service("helpdesk", parse(render.source_file(draft), "helpdesk.yml"), "sources/helpdesk.yml")
    files = {p.name: t for p, t in dbtfiles.render(service, {"tickets": {}}, "Tickets").items()}
    sql = files["stg_helpdesk__tickets.sql"]
    assert "cast({{ adapter.quote('order') }} as bigint) as {{ adapter.quote('order') }}," in sql
    assert "        {{ adapter.quote('order') }}," in sql  # the final CTE's column list
    assert "'order': 'bigint'" in sql and "'_dlt_load_id': 'varchar'" in sql and '"order"' not in sql
    columns = yaml.safe_load(files["_helpdesk__models.yml"])["models"][0]["columns"]
    reserved = next(c for c in columns if c["name"] == "order")
    assert reserved["quote"] is True


def test_the_dbt_wrapper_passes_the_loaded_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from transform import dbt_runner

    folder = tmp_path / "sources"
    folder.mkdir()
    (folder / "orders.yml").write_text((repo_root() / "sources" / "orders.yml").read_text())
    monkeypatch.setenv("SHOP_SOURCES_DIR", str(folder))
    assert dbt_runner.dbt_env({}, need_key=False)["SHOP_SOURCE_NAMES"] == "orders"


# ---- drift: the comparison --------------------------------------------------------------------------
def _service(
    fields: dict[str, Any], loose: tuple[str, ...] = (), children: dict[str, str] | None = None
) -> Service:
    text = yaml.safe_dump(
        {
            "auth": "none",
            "openapi": "/openapi.json",
            "endpoints": [
                {
                    "name": "tickets",
                    "path": "/api/tickets",
                    "primary_key": "id",
                    "records": "$",
                    "paginator": "none",
                    "incremental": "snapshot",
                    "fields": fields,
                    "loose": list(loose),
                    "children": children or {},
                }
            ],
        }
    )
    return to_service("helpdesk", parse(text, "helpdesk.yml"), "sources/helpdesk.yml")


def _doc_with(**props: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(PLAIN_DOC))
    ticket = doc["components"]["schemas"]["Ticket"]["properties"]
    for name, schema in props.items():
        if schema is None:
            ticket.pop(name)
        else:
            ticket[name] = schema
    return doc


BASE_FIELDS = {
    "id": "int",
    "subject": "str",
    "score": "float",
    "updated_at": "ts",
    "assignee": {"person_id": "int"},
}


def test_a_matching_document_passes_and_an_added_field_is_reported() -> None:
    report = docdrift.compare(_service(BASE_FIELDS), PLAIN_DOC)
    assert report.problems == []
    assert report.added == [
        "tickets.open (bool)",
        "tickets.tags (list of scalars)",
        "tickets.extra (any)",
        "tickets.createdAt (str)",
        "tickets.comments (list of objects)",
        "tickets.assignee.name (str)",
    ]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"subject": None}, "tickets field subject is gone from the document (renamed to createdAt?)"),
        (
            {"subject": None, "title": {"type": "string"}},
            "tickets field subject is gone from the document (renamed to one of createdAt, title?)",
        ),
        ({"id": {"type": "string"}}, "tickets field id is declared int but the document says str"),
        ({"score": {"type": "boolean"}}, "tickets field score is declared float but the document says bool"),
        (
            {"assignee": {"type": "string"}},
            "tickets field assignee is declared object but the document says str",
        ),
        (
            {
                "assignee": {
                    "type": "object",
                    "properties": {"person": {"type": "integer"}, "name": {"type": "string"}},
                }
            },
            "tickets.assignee field person_id is gone from the document (renamed to person?)",
        ),
    ],
    ids=["removed", "renamed", "retyped", "float-to-bool", "object-to-scalar", "nested-renamed"],
)
def test_a_removed_renamed_or_retyped_field_is_a_problem(change: dict[str, Any], problem: str) -> None:
    report = docdrift.compare(_service(BASE_FIELDS), _doc_with(**change))
    assert report.problems == [problem]


def test_what_the_loader_can_still_load_is_not_drift() -> None:
    """An int documented where a float is declared, a str/date-time either way, a now-nullable field,
    a free-form value, and a key of a loose object that the document leaves out."""
    change = {
        "score": {"type": "integer"},
        "updated_at": {"type": "string"},
        "subject": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "assignee": {"type": "object", "properties": {"name": {"type": "string"}}},
    }
    report = docdrift.compare(_service(BASE_FIELDS, loose=("assignee",)), _doc_with(**change))
    assert report.problems == []
    report = docdrift.compare(
        _service({**BASE_FIELDS, "id": "str"}), _doc_with(id={"type": "string", "format": "uuid"})
    )
    assert report.problems == []


def test_child_lists_paths_and_records_are_compared() -> None:
    fields = {**BASE_FIELDS, "comments": [{"comment_id": "int", "body": "str"}]}
    doc = _doc_with()
    doc["components"]["schemas"]["Ticket"]["properties"]["comments"]["items"]["allOf"][1] = {
        "type": "object",
        "properties": {"text": {"type": "string"}},
    }
    report = docdrift.compare(_service(fields, children={"comments": "comment_id"}), doc)
    assert report.problems == ["tickets.comments[] field body is gone from the document (renamed to text?)"]
    moved = json.loads(json.dumps(PLAIN_DOC))
    moved["paths"]["/tickets/all"] = moved["paths"].pop("/tickets")
    assert docdrift.compare(_service(BASE_FIELDS), moved).problems == [
        "tickets: GET /api/tickets is not in the document (removed or moved?)"
    ]
    wrapped = json.loads(json.dumps(PLAIN_DOC))
    content = wrapped["paths"]["/tickets"]["get"]["responses"]["200"]["content"]["application/json"]
    content["schema"] = {"type": "object", "properties": {"data": content["schema"]}}
    assert docdrift.compare(_service(BASE_FIELDS), wrapped).problems == [
        "tickets: the document's 200 answer of GET /api/tickets has no list of records at records: $;"
        " it has lists of objects at data"
    ]


@pytest.mark.parametrize("name", SHOP)
def test_the_shop_documents_match_the_shop_source_files(
    shop_documents: dict[str, dict[str, Any]], name: str
) -> None:
    """The check is on for the five (``openapi: /openapi.json``): their documents are precise enough
    that a run passes it with nothing to report."""
    service = load_file(repo_root() / "sources" / f"{name}.yml")
    assert service.openapi == "/openapi.json"
    report = docdrift.compare(service, shop_documents[name])
    assert (report.problems, report.added) == ([], [])


def test_force_removes_the_staging_model_of_a_table_the_service_dropped(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The document loses the tickets' comments: ``--force`` removes their generated staging model (it
    would read a source table no longer declared, and dbt would refuse the whole project) and keeps the
    models a team wrote beside the generated ones."""
    doc = tmp_path / "openapi.json"
    doc.write_text(json.dumps(PLAIN_DOC))
    args = ["helpdesk", "--openapi", str(doc), "--sources-dir", str(tmp_path / "src")]
    args += ["--dbt-project", str(tmp_path / "dbt")]
    assert cli.main(args) == 0
    folder = tmp_path / "dbt/models/staging/helpdesk"
    comments = folder / "stg_helpdesk__tickets_comments.sql"
    assert "source('helpdesk', 'tickets__comments')" in comments.read_text()
    own = folder / "stg_helpdesk__tickets_open.sql"
    own.write_text("select id from {{ source('helpdesk', 'tickets') }} where open\n")
    notes = folder / "stg_helpdesk__notes.sql"
    notes.write_text("select 1 as note_id\n")
    capsys.readouterr()
    dropped = json.loads(json.dumps(PLAIN_DOC))
    del dropped["components"]["schemas"]["Ticket"]["properties"]["comments"]
    doc.write_text(json.dumps(dropped))
    assert cli.main([*args, "--force"]) == 0
    out = capsys.readouterr().out
    assert not comments.exists()
    assert "removed" in out and "stg_helpdesk__tickets_comments.sql" in out
    assert own.exists() and notes.exists()
    assert (folder / "stg_helpdesk__tickets.sql").exists()
    assert "tickets__comments" not in (folder / "_helpdesk__sources.yml").read_text()
