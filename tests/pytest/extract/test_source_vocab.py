"""The source-file vocabulary for data that changes: cursor types and formats, composite keys, soft
deletes, error envelopes at any path, OAuth2 tokens revoked mid-run, and the per-endpoint counts in
``ops``. Each case runs the real loader (``extract.runner.run``, in this process) into a real DuckDB
warehouse against ``changeapi.ChangeApi`` on 127.0.0.1, whose records get new versions between runs;
the walk-only cases build the loader's own client and walker (milliseconds each).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from extract import config
from extract.config import ServiceConfig
from extract.errors import FetchError, SourceFileError
from extract.limits import HttpPolicy
from extract.paginators import first_request, walk
from extract.resources import make_client
from extract.result import RunResult
from extract.runner import run
from extract.sourcefile import load_file, parse
from tests.pytest.extract.changeapi import SECRET, ChangeApi, cursor_value, instant
from tests.pytest.extract.faultserver import fault_server
from tests.pytest.support.envs import use_loader_project

PAGING = {"kind": "page_number", "page_param": "page", "limit_param": "size", "total_header": "X-Total-Count"}


def source_text(
    fields: dict[str, Any],
    incremental: Any,
    primary_key: Any = "id",
    auth: Any = "none",
    extra: dict[str, Any] | None = None,
    more: list[dict[str, Any]] | None = None,
    top: dict[str, Any] | None = None,
) -> str:
    """A source file with endpoint ``items`` (and ``more`` endpoints) for ``ChangeApi``."""
    endpoint = {
        "name": "items",
        "path": "/items",
        "primary_key": primary_key,
        "records": "$",
        "paginator": PAGING,
        "incremental": incremental,
        "fields": fields,
        **(extra or {}),
    }
    doc = {"auth": auth, "endpoints": [endpoint, *(more or [])], **(top or {})}
    return yaml.safe_dump(doc, sort_keys=False)


@dataclasses.dataclass
class Loader:
    api: ChangeApi
    url: str
    folder: Path
    warehouse: Path

    def write(self, text: str) -> None:
        (self.folder / "change.yml").write_text(text)

    def run(self) -> RunResult:
        return run(["change"])

    def query(self, sql: str) -> list[tuple]:
        con = duckdb.connect(str(self.warehouse), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def ids(self, table: str = "items", columns: str = "id") -> list[Any]:
        rows = self.query(f"select {columns} from raw_change.{table} order by {columns}")
        return [r[0] if len(r) == 1 else r for r in rows]


@pytest.fixture
def loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Loader]:
    """The loader, in this process, pointed at a sources folder holding only ``change.yml``."""
    api = ChangeApi()
    folder = tmp_path / "sources"
    folder.mkdir()
    with fault_server(api.answer) as srv:
        url = srv.url  # type: ignore[attr-defined]
        wh = use_loader_project(tmp_path, monkeypatch, folder, SOURCES__CHANGE__BASE_URL=url)
        monkeypatch.setenv("SOURCES__CHANGE__PAGE_SIZE", "5")
        monkeypatch.setenv("SOURCES__CHANGE__MAX_ATTEMPTS", "2")
        monkeypatch.setenv("SOURCES__CHANGE__BACKOFF_BASE", "0.01")
        monkeypatch.setenv("SOURCES__CHANGE__BACKOFF_MAX", "0.01")
        yield Loader(api, url, folder, wh)


def loaded(result: RunResult, table: str = "items") -> int:
    assert result.failures == {}, result.failures
    return result.table_rows.get(("change", table), 0)


# ---- incremental cursors --------------------------------------------------------------------------
def _iso_us(tick: int, cursor: str, lag: timedelta) -> str:
    return (instant(tick, cursor) - lag).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# id: (served cursor, declared type, incremental block, the bound the second run must send after tick 12)
CURSORS: dict[str, tuple[str, str, dict[str, Any], str | None]] = {
    "iso-utc": (
        "iso",
        "ts",
        {"lag": 3},
        _iso_us(12, "iso", timedelta(seconds=3)),
    ),
    "iso-offset+seconds-format": (
        "iso_offset",
        "ts",
        {"lag": 0, "since_format": "iso8601_seconds"},
        instant(12, "iso").strftime("%Y-%m-%dT%H:%M:%SZ"),
    ),
    "epoch-s": (
        "epoch_s",
        "int",
        {"cursor_type": "epoch_s", "lag": 4},
        str(cursor_value(12, "epoch_s") - 4),
    ),
    "epoch-ms": (
        "epoch_ms",
        "int",
        {"cursor_type": "epoch_ms", "lag": 1.5, "since_format": "epoch_ms"},
        str(cursor_value(12, "epoch_ms") - 1500),
    ),
    "epoch-ms-sent-as-iso": (
        "epoch_ms",
        "int",
        {"cursor_type": "epoch_ms", "lag": 0, "since_format": "iso8601"},
        _iso_us(12, "epoch_ms", timedelta(0)),
    ),
    "integer-version": ("version", "int", {"lag": 2}, "10"),
    "string": ("string", "str", {}, "r000012"),
    "no-since-param": ("iso", "ts", {"since_param": None}, None),
}


@pytest.mark.parametrize("case", list(CURSORS))
def test_each_cursor_type_loads_only_new_versions(loader: Loader, case: str) -> None:
    """Old code: a cursor could only be a ``ts`` field, sent as ISO 8601 with microseconds (an epoch,
    a version number or a string cursor was refused: "must be a field of type ts"; no other format).
    Each type here: the first run loads all, a re-run loads nothing although it re-reads the lag window
    (exact-version dedup), the bound goes out in the declared parameter and format, and two new versions
    load as exactly two rows merged over the old ones."""
    served, declared, block, bound = CURSORS[case]
    api = loader.api
    api.cursor, api.since_format = served, block.get("since_format", "raw")
    api.ignore_since = block.get("since_param", "since") is None
    incremental = {"mode": "updated", "cursor": "changed", "since_param": "since", **block}
    loader.write(source_text({"id": "int", "name": "str", "changed": declared}, incremental))

    assert loaded(loader.run()) == 12
    assert loader.ids() == list(range(1, 13))
    assert api.sent("since") == []  # the first run asks for everything
    assert loaded(loader.run()) == 0
    if bound is None:
        assert api.sent("since") == []
    else:
        assert api.sent("since")[-1] == bound

    api.update(("eu", 3))
    api.update(("eu", 7))
    assert loaded(loader.run()) == 2
    names = dict(loader.query("select id, name from raw_change.items"))
    assert len(names) == 12 and (names[3], names[7], names[4]) == ("n3-v13", "n7-v14", "n4-v4")
    if served == "iso_offset":  # +02:00 on the wire, the same instant in raw
        ((changed,),) = loader.query("select changed from raw_change.items where id = 1")
        assert changed.astimezone(UTC) == instant(1, "iso")


@pytest.mark.parametrize(
    ("incremental", "expected"),
    [
        (
            {"mode": "updated", "cursor": "changed", "cursor_type": "epoch_ms"},
            "incremental.cursor_type: cursor_type epoch_ms needs a field of type int or float; 'changed'",
        ),
        (
            {"mode": "updated", "cursor": "changed", "lag": 5},
            "incremental.lag: a string cursor has no distance to lag by",
        ),
        (
            {"mode": "updated", "cursor": "size"},
            "incremental.cursor_type: 'size' is a 'float' field: set cursor_type (epoch_s or epoch_ms",
        ),
        (
            {"mode": "updated", "cursor": "changed", "since_format": "epochs"},
            "incremental.since_format: Input should be 'raw', 'iso8601', 'iso8601_seconds', 'date'",
        ),
    ],
    ids=["type-mismatch", "string-lag", "float-needs-a-type", "bad-format"],
)
def test_a_cursor_that_does_not_fit_its_field_is_refused(incremental: dict[str, Any], expected: str) -> None:
    text = source_text({"id": "int", "changed": "str", "size": "float"}, incremental)
    with pytest.raises(SourceFileError) as err:
        parse(text, "sources/change.yml")
    assert f"sources/change.yml: endpoints[0].{expected}" in str(err.value), str(err.value)


# ---- composite keys -------------------------------------------------------------------------------
COMPOSITE_FIELDS = {
    "region": "str",
    "id": "int",
    "name": "str",
    "changed": "ts",
    "lines": [{"region": "str", "line_no": "int", "qty": "int"}],
}
ERASED = {
    "name": "erased",
    "path": "/erased",
    "primary_key": ["region", "id"],
    "records": "$",
    "paginator": PAGING,
    "incremental": {"mode": "updated", "cursor": "changed", "since_param": "since"},
    "fields": {"region": "str", "id": "int", "changed": "ts"},
}


def test_a_composite_key_merges_dedups_and_deletes_by_all_its_fields(loader: Loader) -> None:
    """``primary_key: [region, id]``: the same id in two regions is two records (old code: the key was
    one field; a list was refused by the file schema). The child table
    carries both parent key fields and is replaced per parent; a new version of ``us/3`` leaves ``eu/3``
    alone; the lag window's dedup holds per composite key; an erasure feed keyed by both fields removes
    ``eu/5`` and its lines but not ``us/5``."""
    api = loader.api
    api.composite = api.lines = True
    api.ticks.clear()
    api.clock = 0
    api.__post_init__()
    loader.write(
        source_text(
            COMPOSITE_FIELDS,
            {"mode": "updated", "cursor": "changed", "since_param": "since"},
            primary_key=["region", "id"],
            extra={"children": {"lines": "line_no"}},
            more=[ERASED],
            top={"hard_deletes": {"feed": "erased", "tables": ["items", "items__lines"]}},
        )
    )
    first = loader.run()
    assert (loaded(first), loaded(first, "items__lines")) == (24, 48)
    assert len(loader.ids(columns="region, id")) == 24
    assert loader.query("select count(distinct (region, id)) from raw_change.items__lines") == [(24,)]
    # the element's own ``region`` is not a second column: the child carries the parent's key once
    columns = loader.query(
        "select column_name from information_schema.columns where table_schema = 'raw_change'"
        " and table_name = 'items__lines'"
    )
    assert sorted(c for (c,) in columns if not c.startswith("_dlt")) == ["id", "line_no", "qty", "region"]

    assert loaded(loader.run()) == 0  # the whole window re-read, every (key, version) known
    api.update(("us", 3))
    again = loader.run()
    assert (loaded(again), loaded(again, "items__lines")) == (1, 2)
    names = dict(((r, i), n) for r, i, n in loader.query("select region, id, name from raw_change.items"))
    assert names[("us", 3)] == "n3-v25" and names[("eu", 3)] == "n3-v3"

    api.erase(("eu", 5))
    erased = loader.run()
    assert erased.failures == {} and erased.hard_deleted == 3  # eu/5 and its two lines
    keys = loader.ids(columns="region, id")
    assert ("eu", 5) not in keys and ("us", 5) in keys and len(keys) == 23
    lines = loader.query("select region, id from raw_change.items__lines where id = 5")
    assert sorted(lines) == [("us", 5), ("us", 5)]


def test_a_deletions_feed_must_carry_every_key_field_of_its_tables() -> None:
    feed = {
        **ERASED,
        "primary_key": ["region", "id"],
        "fields": {"region": "str", "id": "int", "changed": "ts"},
    }
    text = source_text(
        {"id": "int", "name": "str", "changed": "ts"},
        "snapshot",
        more=[feed],
        top={"hard_deletes": {"feed": "erased", "tables": ["items"]}},
    )
    with pytest.raises(
        SourceFileError, match=r"hard_deletes\.tables: 'items' has no column region of the feed's key"
    ):
        parse(text, "sources/change.yml")
    # the names are in the message (before, the template showed "{feed!r} is not an endpoint")
    with pytest.raises(SourceFileError, match=r"hard_deletes\.feed: 'erasd' is not an endpoint"):
        parse(text.replace("feed: erased", "feed: erasd"), "sources/change.yml")


# ---- soft deletes ---------------------------------------------------------------------------------
MARKED_FIELDS = {
    "id": "int",
    "name": "str",
    "changed": "ts",
    "is_deleted": "bool",
    "deleted_at": "ts",
    "lines": [{"line_no": "int", "qty": "int"}],
}


def test_a_record_marked_deleted_leaves_raw_with_its_children(loader: Loader) -> None:
    """Old code had only a deletions feed: a record that marks itself deleted stayed in raw as a live
    row. Now it is removed from the table and its child table after the load, like an erased key; the
    lag window's re-read does not bring it back; a record restored later (a new version without the
    mark) is loaded again."""
    api = loader.api
    api.marks = api.lines = True
    incremental = {"mode": "updated", "cursor": "changed", "since_param": "since"}
    loader.write(
        source_text(
            MARKED_FIELDS, incremental, extra={"children": {"lines": "line_no"}, "soft_delete": "is_deleted"}
        )
    )
    api.delete(("eu", 9))  # deleted before the first load: never a live row
    first = loader.run()
    assert loaded(first) == 12 and first.hard_deleted == 3
    assert 9 not in loader.ids()

    api.delete(("eu", 4))
    second = loader.run()
    assert loaded(second) == 1 and second.hard_deleted == 3  # its row and its two lines
    assert loader.ids() == [i for i in range(1, 13) if i not in (4, 9)]
    assert 4 not in loader.ids("items__lines")
    assert loaded(loader.run()) == 0 and loader.ids() == [i for i in range(1, 13) if i not in (4, 9)]

    api.deleted.discard(("eu", 4))
    api.update(("eu", 4))
    assert loaded(loader.run()) == 1
    assert 4 in loader.ids() and loader.ids("items__lines").count(4) == 2


def test_a_soft_delete_added_later_removes_rows_already_loaded(loader: Loader) -> None:
    """The removal is table-wide and idempotent, so rows a run loaded before the removal ran (a run
    stopped between its load and the removal, or a file that only now says ``soft_delete``) go with the
    next run, even one that loads nothing. Here the mark is a field that is only set on deletion
    (``deleted_at``, ``not_null: true``)."""
    api = loader.api
    api.marks = True
    fields = {k: v for k, v in MARKED_FIELDS.items() if k != "lines"}
    incremental = {"mode": "updated", "cursor": "changed", "since_param": "since"}
    api.delete(("eu", 2))
    loader.write(source_text(fields, incremental))
    assert loaded(loader.run()) == 12 and 2 in loader.ids()
    loader.write(
        source_text(fields, incremental, extra={"soft_delete": {"field": "deleted_at", "not_null": True}})
    )
    later = loader.run()
    assert loaded(later) == 0 and later.hard_deleted == 1
    assert 2 not in loader.ids()


# ---- error envelope at a path ---------------------------------------------------------------------
def _walk(
    api: ChangeApi, url: str, text: str, tmp_path: Path, creds: dict[str, str] | None = None
) -> list[int]:
    path = tmp_path / "change.yml"
    path.write_text(text)
    service = load_file(path)
    policy = HttpPolicy(max_attempts=2, backoff_base=0.01, backoff_max=0.01)
    tuning = dataclasses.replace(config.tuning("change"), http=policy)
    client = make_client(service, ServiceConfig("change", url, creds or {}, tuning))
    ep = service.endpoints[0]
    ids: list[int] = []
    for page in walk(client, ep, first_request(ep, client.url(ep.path), 5, {}), 100, service.where):
        ids += page.records.column("id").to_pylist() if page.records.num_rows else []
    return ids


@pytest.fixture
def change_api() -> Iterator[tuple[ChangeApi, str]]:
    api = ChangeApi()
    with fault_server(api.answer) as srv:
        yield api, srv.url  # type: ignore[attr-defined]


def _envelope_source(error_path: Any) -> str:
    extra = {"records": "data"} if error_path == "default" else {"records": "data", "error_path": error_path}
    return source_text({"id": "int", "name": "str", "changed": "ts"}, "snapshot", extra=extra)


def test_an_error_envelope_at_the_configured_path_fails_with_its_message(
    change_api: tuple[ChangeApi, str], tmp_path: Path
) -> None:
    """A 200 whose body says ``meta.errors: [{code, message}]``: old code read only a top-level
    ``error`` and loaded the page's records as if all was well (here: an empty list, a silent zero).
    Now it is retried like a 5xx and then fails naming the path, the code and the message."""
    api, url = change_api
    api.envelope_path, api.envelope = "meta.errors", [{"code": "quota", "message": "daily quota exceeded"}]
    with pytest.raises(FetchError) as err:
        _walk(api, url, _envelope_source("meta.errors"), tmp_path)
    message = str(err.value)
    assert (
        "change items: failed after 2 attempt(s); last status 200: error envelope at 'meta.errors': "
        "code='quota' message='daily quota exceeded'" in message
    ), message
    assert "error_path" in message and f"[{url}/items]" in message
    assert api.data_requests() == 2  # retried within the budget, like the top-level envelope


@pytest.mark.parametrize(
    ("envelope_path", "envelope", "error_path"),
    [
        ("meta.errors", [], "meta.errors"),  # an empty error list: no error
        (
            "error",
            None,
            "default",
        ),  # "error": null next to the records: no error (old code: "error envelope 'None'")
        ("error", "see status page", None),  # error_path: null: an "error" key means nothing
    ],
    ids=["empty-list", "null", "disabled"],
)
def test_an_empty_or_ignored_error_path_loads_the_page(
    change_api: tuple[ChangeApi, str], tmp_path: Path, envelope_path: str, envelope: Any, error_path: Any
) -> None:
    api, url = change_api
    api.envelope_path, api.envelope = envelope_path, envelope
    assert _walk(api, url, _envelope_source(error_path), tmp_path) == list(range(1, 13))


def test_the_default_error_envelope_still_fails(change_api: tuple[ChangeApi, str], tmp_path: Path) -> None:
    api, url = change_api
    api.envelope_path, api.envelope = "error", {"code": "maintenance", "message": "back soon"}
    with pytest.raises(FetchError, match="error envelope code='maintenance' message='back soon'"):
        _walk(api, url, _envelope_source("default"), tmp_path)


# ---- OAuth2: a 401 refreshes the token once --------------------------------------------------------
OAUTH = {"kind": "oauth2", "token_url": "/token"}
CREDS = {"client_id": "reader", "client_secret": SECRET}


def test_a_token_revoked_mid_walk_is_replaced_once_and_the_walk_goes_on(
    change_api: tuple[ChangeApi, str], tmp_path: Path
) -> None:
    """The server revokes the token after the first page and answers 401 ``invalid_token`` (not
    ``token_expired``). Old code refreshed only on ``token_expired`` and failed the run with 401."""
    api, url = change_api
    api.auth, api.revoke_after = "oauth2", 1
    text = source_text({"id": "int", "name": "str", "changed": "ts"}, "snapshot", auth=OAUTH)
    assert _walk(api, url, text, tmp_path, CREDS) == list(range(1, 13))
    assert api.token_requests() == 2
    assert api.data_requests() == 4  # pages 1, 2 (refused), 2 again, 3


def test_a_401_that_persists_with_a_fresh_token_fails_after_one_refresh(
    change_api: tuple[ChangeApi, str], tmp_path: Path
) -> None:
    api, url = change_api
    api.auth, api.refuse_all = "oauth2", True
    text = source_text({"id": "int", "name": "str", "changed": "ts"}, "snapshot", auth=OAUTH)
    with pytest.raises(FetchError) as err:
        _walk(api, url, text, tmp_path, CREDS)
    message = str(err.value)
    assert (
        "last status 401: invalid_token" in message and "refused again with a freshly issued token" in message
    )
    assert "check the change credentials" in message and SECRET not in message
    assert (api.token_requests(), api.data_requests()) == (2, 2)  # one refresh, never a loop


# ---- ops: expected and loaded rows per endpoint ---------------------------------------------------
def _endpoint_log(loader: Loader) -> list[tuple]:
    """``ops.run_endpoints`` of every loader run, oldest first."""
    return loader.query(
        "select e.endpoint, e.expected_rows, e.walked_rows, e.loaded_rows, e.status from ops.run_endpoints e"
        " join ops.runs r using (run_id) order by r.started_at, e.endpoint"
    )


def test_ops_records_the_reported_total_and_the_rows_walked_and_loaded_per_endpoint(loader: Loader) -> None:
    """Before, ``ops`` had rows per raw table only: neither what the API said it held nor what a failed
    walk had seen. Now each endpoint of each run has its reported total (``X-Total-Count`` here; NULL
    where the API reports none), the rows walked and the rows loaded; a short walk is recorded with its
    counts and ``failed``, loading 0."""
    api = loader.api
    incremental = {"mode": "updated", "cursor": "changed", "since_param": "since"}
    erased = {**ERASED, "primary_key": "id", "fields": {"id": "int", "changed": "ts"}, "paginator": "none"}
    loader.write(source_text({"id": "int", "name": "str", "changed": "ts"}, incremental, more=[erased]))
    assert loaded(loader.run()) == 12
    assert loaded(loader.run()) == 0  # the lag window re-read: 12 walked, none new
    api.total_shift = 5  # the API now claims 17: the walk cannot reach them
    short = loader.run()
    assert "the API reported 17 records but the walk ended after 12" in short.failures["change"]
    assert _endpoint_log(loader) == [
        ("erased", None, 0, 0, "loaded"),
        ("items", 12, 12, 12, "loaded"),
        ("erased", None, 0, 0, "loaded"),
        ("items", 12, 12, 0, "loaded"),
        ("items", 17, 12, 0, "failed"),  # the service stopped there: erased was not walked
    ]


@pytest.mark.parametrize(
    ("cursor_type", "since_format", "expected"),
    [
        ("timestamp", "raw", "2026-03-04T05:06:07.890123Z"),
        ("timestamp", "iso8601_seconds", "2026-03-04T05:06:07Z"),  # floored: the bound is inclusive
        ("timestamp", "date", "2026-03-04"),
        ("timestamp", "epoch_s", 1772600767),
        ("timestamp", "epoch_ms", 1772600767890),
        ("epoch_s", "raw", 1772600767),
        ("epoch_ms", "raw", 1772600767890),
        ("epoch_ms", "iso8601", "2026-03-04T05:06:07.890123Z"),
    ],
)
def test_a_time_bound_is_written_in_the_declared_format(
    cursor_type: str, since_format: str, expected: Any
) -> None:
    from datetime import datetime

    from extract.incremental import format_bound

    at = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
    micros = int(at.timestamp()) * 1_000_000 + at.microsecond
    assert format_bound(micros, cursor_type, since_format) == expected
