"""The ops run log on a real DuckDB file: rows for started, finished and failed runs, per-table counts,
and no secret ever reaching the ``error`` column."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from core import ops_log, secrets


@pytest.fixture()
def con(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> duckdb.DuckDBPyConnection:
    monkeypatch.setenv("SHOP_RUN_DIR", str(tmp_path / "run"))
    connection = duckdb.connect(str(tmp_path / "shop.duckdb"))
    yield connection
    connection.close()


def test_start_and_finish_a_run(con: duckdb.DuckDBPyConnection) -> None:
    run_id = ops_log.start_run(con, "python -m elt run", "extract")
    row = con.execute(
        'select command, step, "user", host, status, finished_at from ops.runs where run_id = ?', [run_id]
    ).fetchone()
    assert row is not None
    command, step, user, host, status, finished_at = row
    assert (command, step, status, finished_at) == ("python -m elt run", "extract", "running", None)
    assert user and host

    ops_log.record_table(con, run_id, "customers", "customers", 120)
    ops_log.record_table(con, run_id, "customers", "customers__addresses", 240)
    ops_log.finish_run(con, run_id, "success", rows=360)

    status, rows, error, started, finished = con.execute(
        "select status, rows, error, started_at, finished_at from ops.runs where run_id = ?", [run_id]
    ).fetchone()
    assert (status, rows, error) == ("success", 360, None)
    assert finished >= started
    tables = con.execute(
        "select source, table_name, rows from ops.run_tables where run_id = ? order by table_name", [run_id]
    ).fetchall()
    assert tables == [("customers", "customers", 120), ("customers", "customers__addresses", 240)]


def test_git_revision_recorded_in_this_repo(con: duckdb.DuckDBPyConnection) -> None:
    run_id = ops_log.start_run(con, "cmd", "dbt")
    (rev,) = con.execute("select git_rev from ops.runs where run_id = ?", [run_id]).fetchone()
    assert rev is not None and len(rev.split("-")[0]) == 12


def test_failed_run_keeps_its_scrubbed_error(
    con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SOURCES__CUSTOMERS__API_KEY", "ck-1234567890abcdef")
    monkeypatch.setenv("SOURCES__ORDERS__CLIENT_ID", "client-id-4242")
    monkeypatch.setenv("SOURCES__CUSTOMERS__BASE_URL", "http://127.0.0.1:9101")
    monkeypatch.setenv("SHOP_PII_KEY", "pii-key-very-secret")
    monkeypatch.setenv("MY_DB_PASSWORD", "hunter2hunter2")
    monkeypatch.setenv("SHOP_ORDERS_TOKEN_TTL", "300")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "fleet.env").write_text("SOURCES__EVENTS__TOKEN=evt-token-from-fleet-file\n")

    error = (
        "GET http://127.0.0.1:9101/v1/customers?key=ck-1234567890abcdef failed after 300 ms; "
        "client_id=client-id-4242 pii=pii-key-very-secret pw=hunter2hunter2 "
        "Authorization: Bearer evt-token-from-fleet-file"
    )
    run_id = ops_log.start_run(con, "python -m extract --token ck-1234567890abcdef", "extract")
    ops_log.finish_run(con, run_id, "failed", rows=0, error=error)

    command, status, stored = con.execute(
        "select command, status, error from ops.runs where run_id = ?", [run_id]
    ).fetchone()
    assert status == "failed"
    for secret in (
        "ck-1234567890abcdef",
        "client-id-4242",
        "pii-key-very-secret",
        "hunter2hunter2",
        "evt-token-from-fleet-file",
    ):
        assert secret not in stored
        assert secret not in command
    # the useful, non-secret parts survive
    assert "http://127.0.0.1:9101/v1/customers" in stored
    assert "300 ms" in stored
    assert stored.count(secrets.MASK) == 5


def test_unknown_status_rejected(con: duckdb.DuckDBPyConnection) -> None:
    run_id = ops_log.start_run(con, "cmd", "export")
    with pytest.raises(ValueError, match="unknown run status"):
        ops_log.finish_run(con, run_id, "ok")


def test_runs_accumulate_across_connections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOP_RUN_DIR", str(tmp_path / "run"))
    path = str(tmp_path / "wh.duckdb")
    ids = []
    for step in ("extract", "dbt", "export"):
        with duckdb.connect(path) as c:
            rid = ops_log.start_run(c, "python -m elt run", step)
            ops_log.finish_run(c, rid, "success", rows=1)
            ids.append(rid)
    with duckdb.connect(path, read_only=True) as c:
        got = c.execute("select step from ops.runs order by started_at").fetchall()
    assert [s for (s,) in got] == ["extract", "dbt", "export"]
    assert len(set(ids)) == 3
    assert os.path.exists(path)


def test_warehouse_file_named_ops_is_not_ambiguous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A database file called ops.duckdb gives catalog ``ops``; the helpers still find their schema."""
    monkeypatch.setenv("SHOP_RUN_DIR", str(tmp_path / "run"))
    with duckdb.connect(str(tmp_path / "ops.duckdb")) as c:
        rid = ops_log.start_run(c, "cmd", "dbt")
        ops_log.finish_run(c, rid, "skipped")
        assert c.execute("select status from ops.ops.runs").fetchall() == [("skipped",)]
