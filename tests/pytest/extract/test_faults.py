"""Every fault mode of the services against the loader: retried within budget, or failed clearly.

Faults are set at run time on the shared fleet through its admin API (``no_faults`` clears them before
and after each test). Each case loads one service into a fresh warehouse.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from extract.runner import run
from services.launcher import Fleet
from tests.pytest.extract.helpers import FAST_RETRIES, LoaderEnv, assert_matches_source, run_cli


def _raw_tables(env: LoaderEnv, service: str) -> list[str]:
    if not env.warehouse.exists():
        return []
    con = env.con()
    try:
        return [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = ?", [f"raw_{service}"]
            ).fetchall()
        ]
    finally:
        con.close()


def _statuses(fleet: Fleet, service: str) -> dict[str, int]:
    """Responses by status over all data paths of a service since the last stats reset."""
    out: dict[str, int] = {}
    for counts in fleet.admin(service).stats()["by_path"].values():
        for status, n in counts.items():
            out[status] = out.get(status, 0) + n
    return out


@pytest.fixture
def faulty(no_faults: Fleet, loader: Callable[..., LoaderEnv]) -> Callable[..., LoaderEnv]:
    """Set ``faults`` on ``service`` of the shared fleet and return a loader env with fast retries."""

    def setup(service: str, faults: dict, **extra: str) -> LoaderEnv:
        no_faults.admin(service).set_faults(faults)
        no_faults.admin(service).reset_stats()
        return loader(no_faults, **{**FAST_RETRIES, **extra})

    return setup


@pytest.mark.parametrize(
    ("service", "faults", "page_size", "retried_status"),
    [
        ("payments", {"rate_limit_every": 3, "retry_after": 1}, "700", "429"),
        ("catalog", {"error_burst": 2, "error_status": 503}, "10", "503"),
        ("customers", {"drop_every": 2}, "100", None),
        ("payments", {"truncate_every": 2}, "700", None),
        ("catalog", {"error_envelope_every": 2}, "25", None),
    ],
    ids=[
        "429-retry-after",
        "5xx-burst-within-budget",
        "dropped-connection",
        "truncated-page",
        "error-envelope",
    ],
)
def test_transient_faults_are_retried_and_data_is_exact(
    faulty: Callable[..., LoaderEnv],
    no_faults: Fleet,
    service: str,
    faults: dict,
    page_size: str,
    retried_status: str | None,
) -> None:
    # 5 attempts: both endpoints of a service walk at once and share the service's fault counters
    env = faulty(service, faults, SOURCES__EXTRACT__PAGE_SIZE=page_size, SOURCES__EXTRACT__MAX_ATTEMPTS="5")
    result = run([service])
    assert result.failures == {}
    stats = _statuses(no_faults, service)
    if retried_status:
        assert stats.get(retried_status, 0) >= 1, stats
    no_faults.admin(service).clear_faults()
    assert_matches_source(env, no_faults.data_dir, (service,))


def test_5xx_longer_than_budget_fails_naming_everything_and_state_stays(
    faulty: Callable[..., LoaderEnv], no_faults: Fleet
) -> None:
    env = faulty("catalog", {"error_burst": 50, "error_status": 503})
    proc = run_cli(env, "catalog")
    assert proc.returncode != 0
    assert "catalog products: failed after 3 attempt(s); last status 503" in proc.stderr, proc.stderr[-2000:]
    assert "incremental state not advanced" in proc.stderr
    assert "products" not in _raw_tables(env, "catalog")
    no_faults.admin("catalog").clear_faults()
    assert run(["catalog"]).failures == {}
    assert_matches_source(env, no_faults.data_dir, ("catalog",))
    con = env.con()
    try:
        runs = con.execute("select status, error from ops.runs order by started_at").fetchall()
    finally:
        con.close()
    assert [r[0] for r in runs] == ["failed", "success"]
    assert "last status 503" in runs[0][1]


def test_incremental_state_does_not_advance_on_failure(
    own_fleet: Fleet, loader: Callable[..., LoaderEnv]
) -> None:
    from services.simulator.simulator import Simulator

    env = loader(own_fleet, **FAST_RETRIES, SOURCES__EXTRACT__PAGE_SIZE="50")
    assert run(["orders"]).failures == {}
    with Simulator(own_fleet.data_dir, seed=11) as sim:
        sim.step(200)
    # the second page fails for good: nothing of this run may count as loaded
    own_fleet.admin("orders").set_faults({"truncate_every": 1})
    failed = run(["orders"])
    assert "orders" in failed.failures and "truncated" in failed.failures["orders"]
    own_fleet.admin("orders").clear_faults()
    assert run(["orders"]).failures == {}
    assert_matches_source(env, own_fleet.data_dir, ("orders",))


def test_read_timeout_is_bounded(faulty: Callable[..., LoaderEnv]) -> None:
    faulty("catalog", {"latency_ms": 1500}, SOURCES__EXTRACT__READ_TIMEOUT="0.3")
    result = run(["catalog"])
    assert "catalog" in result.failures
    assert "last status timeout" in result.failures["catalog"]
    assert "3 attempt(s)" in result.failures["catalog"]


def test_error_envelope_on_every_page_is_an_error_not_an_empty_page(faulty: Callable[..., LoaderEnv]) -> None:
    env = faulty("catalog", {"error_envelope_every": 1})
    result = run(["catalog"])
    assert "maintenance" in result.failures["catalog"]
    assert "products" not in _raw_tables(env, "catalog")


def test_truncated_every_page_fails_clearly(faulty: Callable[..., LoaderEnv]) -> None:
    faulty("payments", {"truncate_every": 1})
    result = run(["payments"])
    assert "malformed JSON body" in result.failures["payments"]
    assert "truncated" in result.failures["payments"]


def test_token_expiry_mid_run_refreshes_and_goes_on(
    faulty: Callable[..., LoaderEnv], no_faults: Fleet
) -> None:
    env = faulty("orders", {"token_expire_after": 3}, SOURCES__EXTRACT__PAGE_SIZE="200")
    result = run(["orders"])
    assert result.failures == {}
    assert _statuses(no_faults, "orders").get("401", 0) >= 1  # the expiry really happened mid-run
    no_faults.admin("orders").clear_faults()
    assert_matches_source(env, no_faults.data_dir, ("orders",))


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP port that records every connection it gets (it must get none)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(1)
            try:
                received.append(conn.recv(65536) or b"<connected>")
            except OSError:
                received.append(b"<connected>")
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield srv.getsockname()[1], received
    stop.set()
    thread.join(timeout=2)
    srv.close()


@pytest.mark.parametrize("service", ["payments", "orders"])
def test_foreign_next_link_fails_and_foreign_port_gets_nothing(
    faulty: Callable[..., LoaderEnv], listener: tuple[int, list[bytes]], service: str
) -> None:
    port, received = listener
    env = faulty(
        service, {"foreign_next_link": f"http://127.0.0.1:{port}"}, SOURCES__EXTRACT__PAGE_SIZE="100"
    )
    result = run([service])
    assert f"points at http://127.0.0.1:{port}, not the service's own origin" in result.failures[service]
    assert received == []
    assert service not in _raw_tables(env, service)


def test_repeating_cursor_fails(faulty: Callable[..., LoaderEnv]) -> None:
    faulty("customers", {"repeat_cursor": True}, SOURCES__EXTRACT__PAGE_SIZE="100")
    result = run(["customers"])
    assert "repeated a next-page cursor" in result.failures["customers"]


def test_page_cap_fails(faulty: Callable[..., LoaderEnv]) -> None:
    faulty("catalog", {}, SOURCES__EXTRACT__PAGE_SIZE="5", SOURCES__EXTRACT__MAX_PAGES="3")
    result = run(["catalog"])
    assert "more than 3 pages" in result.failures["catalog"]


def test_drift_added_field_grows_the_raw_table(
    faulty: Callable[..., LoaderEnv], caplog: pytest.LogCaptureFixture
) -> None:
    env = faulty("payments", {"drift_add": "risk_score"})
    with caplog.at_level(logging.WARNING, logger="extract.shape"):
        result = run(["payments"])
    assert result.failures == {}
    assert "new column raw_payments.payments.risk_score" in caplog.text
    con = env.con()
    try:
        values = con.execute("select distinct risk_score from raw_payments.payments").fetchall()
    finally:
        con.close()
    assert values == [("drifted",)]


@pytest.mark.parametrize(
    ("service", "faults", "expected"),
    [
        ("payments", {"drift_remove": "currency"}, "raw_payments.payments: field(s) currency missing"),
        (
            "customers",
            {"drift_rename": {"email": "email_address"}},
            "raw_customers.customers: field(s) email missing from the source records (removed or renamed at "
            "the source?); new fields in the same records: email_address",
        ),
    ],
    ids=["removed", "renamed"],
)
def test_drift_removed_or_renamed_field_fails_clearly(
    faulty: Callable[..., LoaderEnv], service: str, faults: dict, expected: str
) -> None:
    env = faulty(service, faults)
    result = run([service])
    assert expected in result.failures[service]
    assert service not in _raw_tables(env, service)


def test_failing_load_package_says_how_to_recover_and_recover_unblocks(
    fleet: Fleet, loader: Callable[..., LoaderEnv]
) -> None:
    """A package that fails at load every time (here: a view squats on the table name) must not block
    silently: the error names ``--recover``, and ``--recover`` aborts it so later runs work again."""
    import duckdb

    from extract.runner import main

    env = loader(fleet)
    con = duckdb.connect(str(env.warehouse))
    con.execute("create schema raw_catalog; create view raw_catalog.products as select 1 as product_id")
    con.close()
    for _ in range(2):  # the second run retries the pending package first and fails the same way
        failed = run(["catalog"])
        assert "python -m extract --recover catalog" in failed.failures["catalog"]
        assert "load step failed" in failed.failures["catalog"]
    assert main(["--recover", "catalog"]) == 0
    con = duckdb.connect(str(env.warehouse))
    con.execute("drop view raw_catalog.products")
    con.close()
    assert run(["catalog"]).failures == {}
    assert_matches_source(env, fleet.data_dir, ("catalog",))


def test_pending_package_is_finished_by_the_next_run(fleet: Fleet, loader: Callable[..., LoaderEnv]) -> None:
    """After the blocker is gone, the next run loads the pending package first, then extracts as usual."""
    import duckdb

    env = loader(fleet)
    con = duckdb.connect(str(env.warehouse))
    con.execute("create schema raw_catalog; create view raw_catalog.products as select 1 as product_id")
    con.close()
    assert "catalog" in run(["catalog"]).failures
    con = duckdb.connect(str(env.warehouse))
    con.execute("drop view raw_catalog.products")
    con.close()
    assert run(["catalog"]).failures == {}
    assert_matches_source(env, fleet.data_dir, ("catalog",))
