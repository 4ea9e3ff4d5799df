"""Services nobody here wrote, loaded with zero lines of Python: ``init`` from one sample answer, an
edit a user would make, then the loader - against npm's ``json-server`` and PyPI's ``datasette``,
installed from the registries by ``tests/pytest/thirdparty.py`` (pinned, into a git-ignored cache).

Neither publishes an OpenAPI document, so both start from ``--sample``. Their conventions differ:

* json-server 0.17.4: the body is a bare array; ``_page``/``_limit`` and an RFC 8288 ``Link`` header;
  ``X-Total-Count``; ``updated_at_gte`` filters; no auth; records may nest a list (a child table).
* datasette 0.65.5 (+ datasette-auth-tokens 0.3): an envelope (``rows``), the next page's URL in the
  body (``next_url``), the total in the body (``filtered_table_rows_count``), ``_size`` at most 1000,
  ``updated_at__gte`` filters, a bearer token (anonymous requests get 403).

Each case: ``init`` guesses the conventions, the first load holds exactly the server's count, a re-run
loads nothing, new and changed records arrive incrementally (``updated_at``), and a wrong pagination key
fails the first load loudly (the short-walk guard against the reported total) instead of loading a part.
The json-server case runs in-process (in ``make test``); the datasette case and the
``dbt build`` + sqlfluff of the generated project run real processes (``slow``).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests
import yaml

from core.settings import repo_root
from extract.scaffold import cli
from tests.pytest import thirdparty
from tests.pytest.support.envs import use_loader_project
from tests.pytest.support.sources import child_env

ORDERS = 1234
TICKETS = 2500
TOKEN = "tp-token-9d1c7e"  # datasette's bearer token in these tests (never expected in a message)


def order(i: int, updated: str = "2025-01-01") -> dict[str, Any]:
    return {
        "id": i,
        "customer": f"c{i % 97}",
        "status": "new",
        "total": i * 1.5,
        "paid": i % 2 == 0,
        "group": f"g{i % 4}",  # a reserved word in SQL: the generated models must quote it (issue 16)
        "updated_at": f"{updated}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.{i:06d}Z",
        "lines": [
            {"line_id": i * 10 + k, "sku": f"sku-{k}", "qty": k, "order": k} for k in range(1, 1 + i % 3)
        ],
    }


def _count(wh: Path, table: str) -> int | None:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        schema, name = table.split(".")
        found = con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, name],
        ).fetchone()[0]
        return con.execute(f"select count(*) from {table}").fetchone()[0] if found else None
    finally:
        con.close()


def _point_loader(monkeypatch: pytest.MonkeyPatch, root: Path, sources: Path, **env: str) -> Path:
    """The in-process loader on ``sources`` with a fresh warehouse and run folder under ``root``."""
    return use_loader_project(root, monkeypatch, sources, **env)


@pytest.fixture
def json_server(tmp_path: Path) -> Iterator[thirdparty.Server]:
    db = tmp_path / "json-server" / "db.json"
    db.parent.mkdir()
    db.write_text(json.dumps({"orders": [order(i) for i in range(1, ORDERS + 1)]}))
    server = thirdparty.start_json_server(db)
    try:
        yield server
    finally:
        server.stop()


def test_json_server_from_a_sample_loads_exactly_incrementally_and_a_wrong_paging_key_fails(
    json_server: thirdparty.Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from extract.runner import run

    url = json_server.url
    sources = tmp_path / "sources"
    assert cli.main(["shopjs", "--sample", f"{url}/orders?_page=1&_limit=5", "--sources-dir", str(sources),
                     "--dbt-project", str(tmp_path / "dbt")]) == 0  # fmt: skip
    path = sources / "shopjs.yml"
    text = path.read_text()
    ep = yaml.safe_load(text)["endpoints"][0]
    assert (ep["path"], ep["records"], ep["primary_key"]) == ("/orders", "$", "id")
    assert ep["paginator"] == {
        "kind": "link_header",
        "limit_param": "_limit",
        "total_header": "X-Total-Count",
    }
    assert ep["params"] == {"_page": 1} and ep["children"] == {"lines": "line_id"}
    assert ep["incremental"] == "snapshot"
    assert "# GUESS: a sample cannot show a since-parameter" in text and "cursor: updated_at" in text
    # the user's edit: json-server filters with <field>_gte
    path.write_text(
        text.replace(
            "incremental: snapshot", "incremental:\n      mode: updated\n      since_param: updated_at_gte"
        )
    )
    wh = _point_loader(
        monkeypatch, tmp_path / "a", sources, SOURCES__SHOPJS__BASE_URL=url, SOURCES__SHOPJS__PAGE_SIZE="200"
    )

    first = run(["shopjs"])
    assert first.failures == {}
    served = int(requests.get(f"{url}/orders?_page=1&_limit=1", timeout=10).headers["X-Total-Count"])
    assert served == ORDERS == _count(wh, "raw_shopjs.orders") == first.table_rows[("shopjs", "orders")]
    lines = sum(len(order(i)["lines"]) for i in range(1, ORDERS + 1))
    assert _count(wh, "raw_shopjs.orders__lines") == lines

    again = run(["shopjs"])
    assert again.failures == {} and again.rows == 0

    for i in (ORDERS + 1, ORDERS + 2, ORDERS + 3):
        assert requests.post(f"{url}/orders", json=order(i, "2025-06-01"), timeout=10).status_code == 201
    changed = {"status": "paid", "updated_at": "2025-06-01T12:00:00.000000Z"}
    assert requests.patch(f"{url}/orders/7", json=changed, timeout=10).status_code == 200
    third = run(["shopjs"])
    assert third.failures == {}
    assert third.table_rows[("shopjs", "orders")] == 4  # three new, one changed
    assert _count(wh, "raw_shopjs.orders") == ORDERS + 3
    con = duckdb.connect(str(wh), read_only=True)
    try:
        assert con.execute("select status from raw_shopjs.orders where id = 7").fetchall() == [("paid",)]
    finally:
        con.close()

    # a wrong pagination key: without `_page` json-server sends no Link header and one page of
    # `_limit` records; the first load of a fresh warehouse must fail, not load 200 of 1237
    path.write_text(path.read_text().replace("    params:\n      _page: 1\n", ""))
    wh2 = _point_loader(
        monkeypatch, tmp_path / "b", sources, SOURCES__SHOPJS__BASE_URL=url, SOURCES__SHOPJS__PAGE_SIZE="200"
    )
    wrong = run(["shopjs"])
    assert wrong.failures["shopjs"].startswith(
        f"shopjs orders: the API reported {ORDERS + 3} records but the walk ended after 200 in 1 page(s);"
        " nothing of this walk is loaded"
    )
    assert "paginator.kind = 'link_header'" in wrong.failures["shopjs"]
    assert _count(wh2, "raw_shopjs.orders") is None


# ---- datasette: real processes (slow) -------------------------------------------------------------------
def tickets_db(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute(
        "create table tickets (ticket_id integer primary key, subject text, priority integer, score real,"
        " is_open integer, updated_at text)"
    )
    con.executemany(
        "insert into tickets values (?, ?, ?, ?, ?, ?)",
        [(i, f"subject {i}", i % 4, i / 8, i % 2, _ts("2025-02-01", i)) for i in range(1, TICKETS + 1)],
    )
    con.commit()
    con.close()


def _ts(day: str, i: int) -> str:
    return f"{day}T{i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d}.000000Z"


@pytest.fixture
def datasette_server(tmp_path: Path) -> Iterator[thirdparty.Server]:
    folder = tmp_path / "datasette"
    folder.mkdir()
    tickets_db(folder / "helpdesk.db")
    meta = folder / "metadata.json"
    meta.write_text(
        json.dumps(
            {
                "allow": {"bot": "loader"},
                "plugins": {
                    "datasette-auth-tokens": {
                        "tokens": [{"token": {"$env": "TP_TOKEN"}, "actor": {"bot": "loader"}}]
                    }
                },
            }
        )
    )
    server = thirdparty.start_datasette(folder / "helpdesk.db", meta, {"TP_TOKEN": TOKEN})
    try:
        yield server
    finally:
        server.stop()


def _cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "extract", *args],
        cwd=repo_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _loader_env(root: Path, sources: Path, **extra: str) -> dict[str, str]:
    env = child_env("SOURCES__", sources_dir=sources)
    (root / "run").mkdir(parents=True, exist_ok=True)
    env.update({"SHOP_WAREHOUSE": str(root / "wh.duckdb"), "SHOP_RUN_DIR": str(root / "run"), **extra})
    return env


@pytest.mark.slow
def test_datasette_from_a_sample_with_a_bearer_token_loads_exactly_and_incrementally(
    datasette_server: thirdparty.Server, tmp_path: Path
) -> None:
    url = datasette_server.url
    sources = tmp_path / "sources"
    creds = {"SOURCES__HELPDESK__TOKEN": TOKEN}
    assert requests.get(f"{url}/helpdesk/tickets.json", timeout=10).status_code == 403  # auth is real
    sample = f"{url}/helpdesk/tickets.json?_shape=objects&_size=3"
    where = ["--sources-dir", str(sources), "--dbt-project", str(tmp_path / "dbt")]
    init = _cli(
        ["init", "helpdesk", "--sample", sample, "--auth", "bearer", *where],
        _loader_env(tmp_path / "init", sources, **creds),
    )
    assert init.returncode == 0, init.stderr
    assert TOKEN not in init.stdout + init.stderr
    path = sources / "helpdesk.yml"
    text = path.read_text()
    assert TOKEN not in text
    model = yaml.safe_load(text)
    ep = model["endpoints"][0]
    assert model["auth"] == "bearer"
    assert (ep["name"], ep["path"], ep["records"], ep["primary_key"]) == (
        "tickets",
        "/helpdesk/tickets.json",
        "rows",
        "ticket_id",
    )
    assert ep["paginator"] == {
        "kind": "json_link",
        "next_path": "next_url",
        "limit_param": "_size",
        "total_path": "filtered_table_rows_count",
    }
    assert ep["params"] == {"_shape": "objects"}
    assert ep["fields"] == {
        "ticket_id": "int",
        "subject": "str",
        "priority": "int",
        "score": "float",
        "is_open": "int",
        "updated_at": "ts",
    }
    # the user's edits: datasette pages at most 1000 rows, filters with <column>__gte, sorts with _sort
    edited = text.replace(
        "incremental: snapshot",
        "incremental:\n      mode: updated\n      since_param: updated_at__gte\n    page_size: 1000",
    ).replace("      _shape: objects\n", "      _shape: objects\n      _sort: updated_at\n")
    path.write_text(edited)
    env = _loader_env(tmp_path / "a", sources, SOURCES__HELPDESK__BASE_URL=url, **creds)

    first = _cli(["helpdesk"], env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert TOKEN not in first.stderr
    wh = tmp_path / "a" / "wh.duckdb"
    head = requests.get(
        f"{url}/helpdesk/tickets.json?_shape=objects&_size=1",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    ).json()
    assert head["filtered_table_rows_count"] == TICKETS == _count(wh, "raw_helpdesk.tickets")
    assert "loaded 2500 rows into raw_helpdesk" in first.stderr

    again = _cli(["helpdesk"], env)
    assert again.returncode == 0 and "loaded 0 rows into raw_helpdesk" in again.stderr, again.stderr[-2000:]

    con = sqlite3.connect(tmp_path / "datasette" / "helpdesk.db")
    con.executemany(
        "insert into tickets values (?, ?, ?, ?, ?, ?)",
        [(i, f"subject {i}", 1, 0.5, 1, _ts("2025-03-01", i)) for i in range(TICKETS + 1, TICKETS + 6)],
    )
    con.execute("update tickets set is_open = 0, updated_at = ? where ticket_id = 42", [_ts("2025-03-02", 1)])
    con.commit()
    con.close()
    third = _cli(["helpdesk"], env)
    assert third.returncode == 0 and "loaded 6 rows into raw_helpdesk" in third.stderr, third.stderr[-2000:]
    assert _count(wh, "raw_helpdesk.tickets") == TICKETS + 5

    # a wrong pagination key on a first load: the walk stops after one page, short of the body's total
    path.write_text(edited.replace("next_path: next_url", "next_path: next_link"))
    fresh = _loader_env(tmp_path / "b", sources, SOURCES__HELPDESK__BASE_URL=url, **creds)
    wrong = _cli(["helpdesk"], fresh)
    assert wrong.returncode == 1
    assert (
        f"helpdesk tickets: the API reported {TICKETS + 5} records but the walk ended after 1000 in 1"
        " page(s); nothing of this walk is loaded" in wrong.stderr
    ), wrong.stderr[-2000:]
    assert _count(tmp_path / "b" / "wh.duckdb", "raw_helpdesk.tickets") is None


@pytest.mark.slow
def test_the_generated_dbt_project_builds_and_passes_sqlfluff(
    json_server: thirdparty.Server, datasette_server: thirdparty.Server, tmp_path: Path
) -> None:
    """Both sources init'ed into one dbt project (the repo's dbt_project.yml, profiles and macros; only
    the generated models), loaded, then ``dbt build`` unchanged and the project's sqlfluff rules; with
    SHOP_SOURCE_NAMES naming other sources (a test run of the shop) the generated nodes are disabled."""
    project = tmp_path / "dbt"
    project.mkdir()
    for name in ("dbt_project.yml", "profiles.yml", ".sqlfluff"):
        shutil.copy(repo_root() / name, project / name)
    shutil.copytree(repo_root() / "macros", project / "macros")
    sources = tmp_path / "sources"
    creds = {"SOURCES__HELPDESK__TOKEN": TOKEN}
    urls = {"SOURCES__HELPDESK__BASE_URL": datasette_server.url, "SOURCES__SHOPJS__BASE_URL": json_server.url}
    env = _loader_env(tmp_path / "load", sources, SOURCES__HELPDESK__PAGE_SIZE="1000", **urls, **creds)
    for args in (
        ["shopjs", "--sample", f"{json_server.url}/orders?_page=1&_limit=5"],
        [
            "helpdesk",
            "--sample",
            f"{datasette_server.url}/helpdesk/tickets.json?_shape=objects&_size=3",
            "--auth",
            "bearer",
        ],
    ):
        made = _cli(["init", *args, "--sources-dir", str(sources), "--dbt-project", str(project)], env)
        assert made.returncode == 0, made.stderr
    load = _cli([], env)
    assert load.returncode == 0, load.stderr[-3000:]
    dbt_env = {
        **env,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_PROFILES_DIR": str(project),
        "DBT_LOG_PATH": str(tmp_path / "logs"),
        "DBT_TARGET_PATH": str(tmp_path / "target"),
    }
    dbt = str(Path(sys.executable).with_name("dbt"))
    built = subprocess.run(
        [dbt, "build", "--project-dir", str(project)],
        cwd=project,
        env=dbt_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout[-4000:]
    for model in ("stg_shopjs__orders", "stg_shopjs__orders_lines", "stg_helpdesk__tickets"):
        assert f"OK created sql view model staging.{model}" in built.stdout, model
    assert "ERROR=0" in built.stdout and "row_drop_guard" in built.stdout
    wh = tmp_path / "load" / "wh.duckdb"
    con = duckdb.connect(str(wh), read_only=True)
    try:
        assert con.execute("select count(*) from staging.stg_shopjs__orders").fetchone()[0] == ORDERS
        assert con.execute("select count(*) from staging.stg_helpdesk__tickets").fetchone()[0] == TICKETS
        groups = 'select count(distinct "group") from staging.stg_shopjs__orders'
        assert con.execute(groups).fetchone()[0] == 4
        orders = 'select sum("order") from staging.stg_shopjs__orders_lines'
        expected = sum(k for i in range(1, ORDERS + 1) for k in range(1, 1 + i % 3))
        assert con.execute(orders).fetchone()[0] == expected
    finally:
        con.close()
    lint = subprocess.run(
        [str(Path(sys.executable).with_name("sqlfluff")), "lint", "models"],
        cwd=project,
        env=dbt_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert lint.returncode == 0, lint.stdout[-4000:]
    listed = subprocess.run(
        [dbt, "ls", "--project-dir", str(project), "--resource-type", "model"],
        cwd=project,
        env={**dbt_env, "SHOP_SOURCE_NAMES": "customers,orders"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert (
        listed.returncode == 0 and "stg_shopjs" not in listed.stdout and "stg_helpdesk" not in listed.stdout
    )
