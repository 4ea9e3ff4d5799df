"""Every pagination style returns every record exactly once; none is skipped while data changes;
incremental filters return exactly the records at or after `updated_since`."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from services.launcher import SERVICES, Fleet
from services.store.db import connect, transaction
from services.store.records import get_doc, put_docs
from services.store.timefmt import fmt_us, parse_us
from tests.pytest.services.helpers import KEYS, SERVICE_OF, auth_headers, db_rows, get, next_link, walk
from tests.pytest.support.fleets import running_fleet

# (path, table, key, order-by timestamp column or None)
ENDPOINTS = [
    ("/v1/customers", "customers", "customer_id", "updated_at"),
    ("/v1/deletions", "deletions", "customer_id", "deleted_at"),
    ("/v1/products", "products", "product_id", "updated_at"),
    ("/v1/categories", "categories", "category_id", None),
    ("/v1/orders", "orders", "order_id", "updated_at"),
    ("/v1/payments", "payments", "payment_id", "updated_at"),
    ("/v1/refunds", "refunds", "refund_id", "updated_at"),
    ("/v1/events", "events", "event_id", None),
]
INCREMENTAL = [(p, t, k, c) for p, t, k, c in ENDPOINTS if c is not None]


def _ids(data_dir: Path, path: str, table: str, key: str) -> list[int]:
    return [r[0] for r in db_rows(data_dir, SERVICE_OF[path], f"SELECT {key} FROM {table}")]


@pytest.mark.parametrize(("path", "table", "key", "_ts"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_walk_returns_every_record_once(fleet: Fleet, path: str, table: str, key: str, _ts: str) -> None:
    expected = _ids(fleet.data_dir, path, table, key)
    assert expected, f"{table} is empty at this scale"
    page_size = max(1, len(expected) // 7)  # several pages, last one partial
    seen = [r[key] for r in walk(fleet, path, page_size)]
    dupes = [k for k, n in Counter(seen).items() if n > 1]
    assert not dupes, f"{path}: served twice: {dupes[:10]}"
    assert sorted(seen) == sorted(expected)


@pytest.mark.parametrize(("path", "table", "key", "ts"), INCREMENTAL, ids=[e[0] for e in INCREMENTAL])
def test_incremental_filter_is_exact(fleet: Fleet, path: str, table: str, key: str, ts: str) -> None:
    """`updated_since` (`since` for deletions) is inclusive: exactly the rows with ts >= since."""
    service = SERVICE_OF[path]
    rows = db_rows(fleet.data_dir, service, f"SELECT {ts}, {key} FROM {table} ORDER BY {ts}, {key}")
    since = rows[len(rows) * 2 // 3][0]  # an existing value, so inclusiveness matters
    expected = sorted(k for t, k in rows if t >= since)
    param = "since" if path == "/v1/deletions" else "updated_since"
    got = [r[key] for r in walk(fleet, path, max(1, len(expected) // 3), {param: since})]
    assert sorted(got) == expected
    assert len(got) == len(set(got))
    # the same instant written with an offset selects the same rows
    offset_form = fmt_us(parse_us(since) + 3_600_000_000)[:-1] + "+01:00"
    got_offset = [r[key] for r in walk(fleet, path, 5000, {param: offset_form})]
    assert sorted(got_offset) == expected


def test_catalog_total_counts_the_filtered_set(fleet: Fleet) -> None:
    rows = db_rows(fleet.data_dir, "catalog", "SELECT updated_at FROM products ORDER BY updated_at")
    since = rows[len(rows) // 2][0]
    body = get(fleet, "catalog", "/v1/products", updated_since=since, limit=1).json()
    assert body["total"] == sum(1 for (t,) in rows if t >= since)
    assert (body["offset"], body["limit"], len(body["data"])) == (0, 1, 1)


def test_orders_page_numbers_without_after(fleet: Fleet) -> None:
    """Clients that compute page numbers (no `after`) still get every order once."""
    expected = _ids(fleet.data_dir, "/v1/orders", "orders", "order_id")
    per_page = len(expected) // 4 + 1
    headers = auth_headers(fleet, "orders")
    seen: list[int] = []
    for page in range(1, 6):
        resp = requests.get(
            fleet.url("orders") + "/v1/orders", headers=headers, params={"page": page, "per_page": per_page}
        )
        body = resp.json()
        assert (body["page"], body["per_page"]) == (page, per_page)
        seen += [o["order_id"] for o in body["data"]]
        link = next_link(resp)
        if page < 4:
            assert link is not None and f"page={page + 1}" in link and "after=" in link
        else:
            assert link is None
    assert sorted(seen) == sorted(expected)


def test_events_feed_and_long_poll_wait_returns_when_caught_up(fleet: Fleet) -> None:
    newest = db_rows(fleet.data_dir, "events", "SELECT MAX(event_id) FROM events")[0][0]
    body = get(fleet, "events", "/v1/events", after_id=newest, wait=0.2).json()
    assert body == {"data": [], "next_after_id": newest, "has_more": False}
    body = get(fleet, "events", "/v1/events", after_id=newest - 3, limit=2).json()
    assert [e["event_id"] for e in body["data"]] == [newest - 2, newest - 1]
    assert (body["next_after_id"], body["has_more"]) == (newest - 1, True)


@pytest.mark.parametrize(
    ("service", "path", "params"),
    [
        ("customers", "/v1/customers", {"limit": 0}),
        ("customers", "/v1/customers", {"limit": 5001}),
        ("customers", "/v1/customers", {"cursor": "not-a-cursor"}),
        ("customers", "/v1/customers", {"updated_since": "yesterday"}),
        ("customers", "/v1/deletions", {"since": "2026-13-01"}),
        ("catalog", "/v1/products", {"offset": -1}),
        ("catalog", "/v1/categories", {"limit": 5001}),
        ("orders", "/v1/orders", {"page": 0}),
        ("orders", "/v1/orders", {"per_page": 5001}),
        ("orders", "/v1/orders", {"after": "Zm9v"}),
        ("payments", "/v1/payments", {"after": "%%%"}),
        ("payments", "/v1/refunds", {"limit": "many"}),
        ("events", "/v1/events", {"wait": 31}),
        ("events", "/v1/events", {"after_id": -1}),
    ],
)
def test_bad_parameters_are_422(fleet: Fleet, service: str, path: str, params: dict) -> None:
    resp = get(fleet, service, path, **params)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["status"] == 422


@pytest.mark.parametrize(
    ("service", "path"),
    [
        ("customers", "/v1/customers/999999999"),
        ("catalog", "/v1/products/999999999"),
        ("orders", "/v1/orders/999999999"),
    ],
)
def test_unknown_ids_are_404(fleet: Fleet, service: str, path: str) -> None:
    resp = get(fleet, service, path)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


def test_records_by_id_match_the_stored_doc(fleet: Fleet) -> None:
    for service, table, key, path in [
        ("customers", "customers", "customer_id", "/v1/customers"),
        ("catalog", "products", "product_id", "/v1/products"),
        ("orders", "orders", "order_id", "/v1/orders"),
    ]:
        row_id, doc = db_rows(fleet.data_dir, service, f"SELECT {key}, doc FROM {table} LIMIT 1 OFFSET 3")[0]
        resp = get(fleet, service, f"{path}/{row_id}")
        assert resp.status_code == 200
        assert resp.content == doc


def test_erased_customers_are_404(fleet: Fleet) -> None:
    erased = db_rows(fleet.data_dir, "customers", "SELECT customer_id FROM deletions")
    assert erased, "the generator erases some customers even at small scales"
    assert get(fleet, "customers", f"/v1/customers/{erased[0][0]}").status_code == 404


# --- walks while the data changes --------------------------------------------------------------------


def copy_data(src: Path, dst: Path) -> Path:
    """A consistent copy of every service file (the backup API copies WAL content too)."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in SERVICES:
        with sqlite3.connect(src / f"{name}.sqlite") as a, sqlite3.connect(dst / f"{name}.sqlite") as b:
            a.backup(b)
    return dst


@pytest.fixture(scope="module")
def changing_fleet(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory):
    """A private fleet on a copy of the shared data, so writing to it disturbs no other suite."""

    root = tmp_path_factory.mktemp("changing")
    data = copy_data(fleet.data_dir, root / "data")
    with running_fleet(root / "run", data) as fl:
        yield fl


class Writer:
    """Writes changes the way the simulator does (through services/store), with strictly rising stamps."""

    def __init__(self, data_dir: Path, service: str, table: str, key: str):
        self.con = connect(data_dir, service)
        self.table, self.key = table, key
        top = (
            self.con.execute(f"SELECT MAX(updated_at) FROM {table}").fetchone()[0]
            if table != "events"
            else None
        )
        self.clock = parse_us(top) + 1_000_000 if top else 0

    def stamp(self) -> str:
        self.clock += 1
        return fmt_us(self.clock)

    def touch(self, ids: list[int]) -> None:
        """Update records (new `updated_at`), as an edit in the source system would."""
        with transaction(self.con):
            docs = [get_doc(self.con, self.table, i) for i in ids]
            for doc in docs:
                doc["updated_at"] = self.stamp()
            put_docs(self.con, self.table, docs)

    def insert_like(self, template_id: int) -> int:
        """A new record (next id), shaped like an existing one."""
        with transaction(self.con):
            doc = get_doc(self.con, self.table, template_id)
            new_id = self.con.execute(f"SELECT MAX({self.key}) FROM {self.table}").fetchone()[0] + 1
            doc[self.key] = new_id
            if "updated_at" in doc:
                doc["updated_at"] = self.stamp()
            put_docs(self.con, self.table, [doc])
        return new_id


MUTABLE = [
    ("/v1/customers", "customers", "customer_id"),
    ("/v1/products", "products", "product_id"),
    ("/v1/orders", "orders", "order_id"),
    ("/v1/payments", "payments", "payment_id"),
    ("/v1/refunds", "refunds", "refund_id"),
]


@pytest.mark.parametrize(("path", "table", "key"), MUTABLE, ids=[m[0] for m in MUTABLE])
def test_no_record_is_skipped_while_data_changes(
    changing_fleet: Fleet, path: str, table: str, key: str
) -> None:
    """After every page, update a record already served, one not served yet and one in the page just
    served, and insert a new one. Every record that existed at the start must be served; records that
    were not touched are served exactly once; the not-yet-served updated ones come (again) later."""
    fleet = changing_fleet
    service = SERVICE_OF[path]
    order = "product_id" if table == "products" else f"updated_at, {key}"
    start_ids = [
        r[0] for r in db_rows(fleet.data_dir, service, f"SELECT {key} FROM {table} ORDER BY {order}")
    ]
    writer = Writer(fleet.data_dir, service, table, key)
    page_size = max(2, len(start_ids) // 8)
    touched: set[int] = set()
    inserted: list[int] = []

    def change(page: int) -> None:
        served = min(page * page_size, len(start_ids))
        picks = {start_ids[0 + page], start_ids[served - 1]}
        if served + page < len(start_ids):
            picks.add(start_ids[served + page])  # not served yet: it moves behind the walk's position
        writer.touch(sorted(picks))
        touched.update(picks)
        inserted.append(writer.insert_like(start_ids[0]))

    seen = Counter(r[key] for r in walk(fleet, path, page_size, on_page=change))
    missing = set(start_ids) - set(seen)
    assert not missing, f"{path}: skipped {sorted(missing)[:10]}"
    twice = {k for k, n in seen.items() if n > 1}
    assert twice <= touched, f"{path}: untouched records served twice: {sorted(twice - touched)[:10]}"
    assert set(inserted[:-1]) <= set(seen), "records inserted before the last page must be served"
    assert touched, "the walk changed nothing: the test proves nothing"


SIM_TABLE = {"/v1/customers": "customers", "/v1/products": "products", "/v1/orders": "orders"}
SIM_TABLE |= {"/v1/payments": "payments", "/v1/refunds": "refunds", "/v1/events": "events"}


@pytest.mark.parametrize("path", list(SIM_TABLE))
def test_walks_lose_nothing_while_the_simulator_runs(changing_fleet: Fleet, path: str) -> None:
    """G's simulator applies a batch of realistic changes after every page; nothing present at the start
    (and not erased meanwhile) may be missing, and only records the simulator touched may come twice."""
    from services.simulator import Simulator

    fleet = changing_fleet
    table, key = SIM_TABLE[path], KEYS[path]
    start_ids = set(_ids(fleet.data_dir, path, table, key))
    touched: set[int] = set()
    erased: set[int] = set()
    with Simulator(fleet.data_dir, seed=len(path)) as sim:

        def change(_: int) -> None:
            summary = sim.step(25)
            touched.update(summary["touched"].get(table, []), summary["created"].get(table, []))
            erased.update(summary["touched"].get("deletions", []), summary["created"].get("deletions", []))

        seen = Counter(r[key] for r in walk(fleet, path, max(2, len(start_ids) // 8), on_page=change))
    assert touched, f"the simulator changed no {table}: the walk proves nothing"
    missing = start_ids - set(seen) - (erased if table == "customers" else set())
    assert not missing, f"{path}: skipped {sorted(missing)[:10]}"
    twice = {k for k, n in seen.items() if n > 1}
    assert twice <= touched, f"{path}: untouched records served twice: {sorted(twice - touched)[:10]}"


INCREMENTAL_SIM = [(p, t, k, c) for p, t, k, c in INCREMENTAL]


@pytest.mark.parametrize(("path", "table", "key", "ts"), INCREMENTAL_SIM, ids=[e[0] for e in INCREMENTAL_SIM])
def test_incremental_pull_after_changes_returns_exactly_the_changed(
    changing_fleet: Fleet, path: str, table: str, key: str, ts: str
) -> None:
    """Note the newest timestamp, let the simulator change things, then pull with that timestamp: the
    answer is exactly what the simulator touched or created (plus rows already sitting on that instant)."""
    from services.simulator import Simulator

    fleet = changing_fleet
    service = SERVICE_OF[path]
    since = db_rows(fleet.data_dir, service, f"SELECT MAX({ts}) FROM {table}")[0][0]
    on_the_edge = {
        r[0] for r in db_rows(fleet.data_dir, service, f"SELECT {key} FROM {table} WHERE {ts} = ?", (since,))
    }
    with Simulator(fleet.data_dir, seed=len(path) + 100) as sim:
        summary = sim.step(150)
    changed = set(summary["touched"].get(table, [])) | set(summary["created"].get(table, []))
    erased = set(summary["touched"].get("deletions", [])) | set(summary["created"].get("deletions", []))
    if table == "customers":
        changed -= erased
        on_the_edge -= erased
    assert changed, f"the simulator changed no {table}: the test proves nothing"
    param = "since" if path == "/v1/deletions" else "updated_since"
    got = [r[key] for r in walk(fleet, path, 50, {param: since})]
    assert len(got) == len(set(got))
    assert set(got) == changed | on_the_edge


def test_events_appended_during_walk_are_served_once(changing_fleet: Fleet) -> None:
    fleet = changing_fleet
    writer = Writer(fleet.data_dir, "events", "events", "event_id")
    start = [r[0] for r in db_rows(fleet.data_dir, "events", "SELECT event_id FROM events")]
    appended: list[int] = []
    records = walk(
        fleet, "/v1/events", len(start) // 6, on_page=lambda _: appended.append(writer.insert_like(1))
    )
    seen = Counter(r["event_id"] for r in records)
    assert max(seen.values()) == 1
    assert set(start) | set(appended[:-1]) <= set(seen)
    assert list(seen) == sorted(seen), "events are served in id order"


def test_long_poll_answers_when_an_event_arrives(changing_fleet: Fleet) -> None:
    """A waiting request returns the new event (not an empty page after the full wait)."""
    import threading

    fleet = changing_fleet
    writer = Writer(fleet.data_dir, "events", "events", "event_id")
    newest = db_rows(fleet.data_dir, "events", "SELECT MAX(event_id) FROM events")[0][0]
    timer = threading.Timer(0.5, lambda: writer.insert_like(1))
    timer.start()
    try:
        body = get(fleet, "events", "/v1/events", after_id=newest, wait=20).json()
    finally:
        timer.join()
    assert [e["event_id"] for e in body["data"]] == [newest + 1]


# --- full scale (slow) ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_full_scale_walks(make_fleet: Callable[..., Fleet]) -> None:
    """Scale 1, the biggest pages: every record of every endpoint exactly once."""
    fleet = make_fleet(scale=1.0)
    for path, table, key, _ in ENDPOINTS:
        expected = _ids(fleet.data_dir, path, table, key)
        seen = [r[key] for r in walk(fleet, path, 5000)]
        assert len(seen) == len(set(seen)) == len(expected), path
        assert set(seen) == set(expected), path
