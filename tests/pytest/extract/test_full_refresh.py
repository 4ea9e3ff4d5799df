"""A full refresh is atomic: until the new load commits, raw and its dlt state stay exactly as they were.

The poison is the case of issue 11: one customer's ``last_name`` holds invalid UTF-8, written straight
into the service's SQLite doc (the service serves docs byte for byte). The page walk, Arrow and dlt's
normalize pass it; DuckDB refuses it when the load reads the Parquet file. Before the fix,
``--full-refresh`` had already dropped the tables at that point: ``raw_customers.customers`` went to 0
rows, and ``--recover`` and a plain run then exited 0 loading nothing.

Both paths are run: in-process (``customers`` alone) and the forked child (``catalog customers`` with
catalog first, so customers is extracted by the child and loaded and swapped by the parent).
"""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import duckdb
import orjson
import pytest
from dlt.common.versioned_state import decompress_state

from services.launcher import Fleet
from services.simulator.simulator import Simulator
from tests.pytest.extract.helpers import LoaderEnv, assert_matches_source, popen_cli, run_cli

MARKER = b"Quarantined"  # the poisoned value's readable part: it must never appear in any output
PATHS = {
    "in-process": (("customers",), {}),
    "forked": (("catalog", "customers"), {"SOURCES__EXTRACT__START_FIRST": '["catalog"]'}),
}


def _poison(data_dir: Path) -> tuple[int, bytes]:
    """Give the first live customer a last name with invalid UTF-8; returns (id, original doc)."""
    con = sqlite3.connect(data_dir / "customers.sqlite")
    try:
        cid, doc = con.execute(
            "select customer_id, doc from customers where deleted_at is null order by 1 limit 1"
        ).fetchone()
        name = orjson.dumps(orjson.loads(doc)["last_name"])
        bad = doc.replace(b'"last_name":' + name, b'"last_name":"' + MARKER + b'\xff\xfe"')
        assert bad != doc
        with con:
            con.execute("update customers set doc = ? where customer_id = ?", (bad, cid))
        return cid, doc
    finally:
        con.close()


def _restore(data_dir: Path, cid: int, doc: bytes) -> None:
    con = sqlite3.connect(data_dir / "customers.sqlite")
    try:
        with con:
            con.execute("update customers set doc = ? where customer_id = ?", (doc, cid))
    finally:
        con.close()


def _tables(con: duckdb.DuckDBPyConnection, schema: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_schema = ? order by 1", [schema]
        ).fetchall()
    ]


def raw_exact(warehouse: Path, service: str) -> dict[str, tuple[int, int]]:
    """Every table of ``raw_<service>``, dlt's own included (loads, state, schema versions): rows and a
    checksum of every column of every row. Equal means nothing in raw changed, not even the cursors."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        schema = f"raw_{service}"
        return {
            t: con.execute(f'select count(*), coalesce(sum(hash(t)), 0) from {schema}."{t}" as t').fetchone()
            for t in _tables(con, schema)
        }


def raw_content(warehouse: Path, service: str) -> dict[str, tuple[int, int]]:
    """The data tables of ``raw_<service>`` without dlt's bookkeeping columns (load ids differ between
    two warehouses): what a clean first load and a full refresh must agree on."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        schema = f"raw_{service}"
        out = {}
        for table in _tables(con, schema):
            if table.startswith("_dlt"):
                continue
            cols = [
                r[0]
                for r in con.execute(
                    "select column_name from information_schema.columns where table_schema = ? and"
                    " table_name = ? and not starts_with(column_name, '_dlt') order by 1",
                    [schema, table],
                ).fetchall()
            ]
            out[table] = con.execute(
                f'select count(*), coalesce(sum(hash({", ".join(cols)})), 0) from {schema}."{table}"'
            ).fetchone()
        return out


def cursor_state(warehouse: Path, service: str) -> dict:
    """The service's resource state (cursors, seen versions, snapshot digests) of its newest committed
    dlt state in the warehouse."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        schema = f"raw_{service}"
        (blob,) = con.execute(
            f"select s.state from {schema}._dlt_pipeline_state as s join {schema}._dlt_loads as l"
            " on l.load_id = s._dlt_load_id where l.status = 0 order by l.load_id desc limit 1"
        ).fetchone()
    return decompress_state(blob)["sources"][service]


def clean_first_load(env: LoaderEnv, names: tuple[str, ...], extra: dict[str, str]) -> Path:
    """A first load of ``names`` into a fresh warehouse and run folder beside ``env``'s; its warehouse."""
    root = env.root / "clean"
    root.mkdir(exist_ok=True)
    warehouse = root / "shop.duckdb"
    out = run_cli(env, *names, extra={**extra, "SHOP_WAREHOUSE": str(warehouse), "SHOP_RUN_DIR": str(root)})
    assert out.returncode == 0, out.stderr[-3000:]
    return warehouse


def assert_equals_clean_first_load(
    env: LoaderEnv, names: tuple[str, ...], extra: dict[str, str], data_dir: Path
) -> None:
    assert_matches_source(env, data_dir, names)
    clean = clean_first_load(env, names, extra)
    for service in names:
        assert raw_content(env.warehouse, service) == raw_content(clean, service), f"raw_{service} differs"
        assert cursor_state(env.warehouse, service) == cursor_state(clean, service), f"{service} cursors"
        assert _loads(env.warehouse, service) == _loads(clean, service), f"raw_{service}._dlt_loads"


def _loads(warehouse: Path, service: str) -> int:
    """How many loads ``raw_<service>._dlt_loads`` records (a refresh replaces the history)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(f"select count(*) from raw_{service}._dlt_loads").fetchone()[0]


@pytest.mark.parametrize("path", list(PATHS))
def test_poisoned_full_refresh_leaves_raw_unchanged_and_converges(
    path: str, own_fleet: Fleet, loader: Callable[..., LoaderEnv]
) -> None:
    names, extra = PATHS[path]
    env = loader(own_fleet)
    assert run_cli(env, *names, extra=extra).returncode == 0
    with Simulator(own_fleet.data_dir, seed=7) as sim:  # updates, soft and hard deletes: a real history
        sim.step(300)
    second = run_cli(env, *names, extra=extra)
    assert second.returncode == 0, second.stderr[-3000:]
    before = raw_exact(env.warehouse, "customers")
    assert before["customers"][0] > 0 and before["deletions"][0] > 0, before

    cid, doc = _poison(own_fleet.data_dir)
    failed = run_cli(env, *names, "--full-refresh", extra=extra)
    assert failed.returncode == 1, failed.stderr[-3000:]
    assert raw_exact(env.warehouse, "customers") == before, "a failed full refresh changed raw_customers"
    assert "customers: FAILED: full refresh not applied" in failed.stderr, failed.stderr[-3000:]
    assert "raw_customers is unchanged" in failed.stderr, failed.stderr[-3000:]
    assert MARKER.decode() not in failed.stdout + failed.stderr, "the poisoned value reached the output"
    if "catalog" in names:  # the other service of the run refreshed normally
        assert "catalog: loaded" in failed.stderr, failed.stderr[-3000:]

    recovered = run_cli(env, "--recover", "customers")
    assert recovered.returncode == 0, recovered.stderr[-3000:]
    said = recovered.stderr
    assert "customers: no pending load package" in said, said
    rows = before["customers"][0]
    assert f"raw_customers holds customers {rows}," in said, said
    assert "the next run continues from cursors customers=" in said, said
    assert raw_exact(env.warehouse, "customers") == before

    plain = run_cli(env, *names, extra=extra)  # the poisoned record did not change: nothing to load
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert raw_exact(env.warehouse, "customers") == before, "the plain run after the failure changed raw"

    _restore(own_fleet.data_dir, cid, doc)
    with Simulator(own_fleet.data_dir, seed=8) as sim:
        sim.step(200)
    plain = run_cli(env, *names, extra=extra)
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert_matches_source(env, own_fleet.data_dir, names)
    refreshed = run_cli(env, *names, "--full-refresh", extra=extra)
    assert refreshed.returncode == 0, refreshed.stderr[-3000:]
    assert_equals_clean_first_load(env, names, extra, own_fleet.data_dir)


def test_recover_reports_lost_rows_instead_of_hiding_them(
    fleet: Fleet, loader: Callable[..., LoaderEnv]
) -> None:
    """The state the old full refresh left (tables emptied, cursors advanced) is reported, exit 1."""
    env = loader(fleet)
    assert run_cli(env, "customers").returncode == 0
    with duckdb.connect(str(env.warehouse)) as con:
        con.execute("delete from raw_customers.customers")
    out = run_cli(env, "--recover", "customers")
    assert out.returncode == 1, out.stderr[-3000:]
    assert "ROWS LOST: raw_customers.customers holds no committed row" in out.stderr, out.stderr
    assert "python -m extract --full-refresh customers" in out.stderr, out.stderr


ALL = ("customers", "catalog", "orders", "payments", "events")


def test_full_refresh_of_every_service_equals_a_clean_first_load(
    own_fleet: Fleet, loader: Callable[..., LoaderEnv]
) -> None:
    """After a history of runs, a full refresh (forked path: the default for several services) leaves
    exactly what a first load into a new warehouse leaves: rows, child tables, erasures, cursors, and
    one load per service; it leaves nothing behind, and the next runs continue from its state."""
    env = loader(own_fleet)
    assert run_cli(env).returncode == 0
    with Simulator(own_fleet.data_dir, seed=9) as sim:
        sim.step(300)
    assert run_cli(env).returncode == 0
    refreshed = run_cli(env, "--full-refresh")
    assert refreshed.returncode == 0, refreshed.stderr[-3000:]
    assert_equals_clean_first_load(env, ALL, {}, own_fleet.data_dir)
    leftovers = sorted(p.name for p in (env.run_dir / "dlt" / "refresh").iterdir())
    assert leftovers == [], f"the refresh left {leftovers}"

    again = run_cli(env)  # the pipelines carry the refresh's state: nothing new, nothing restored
    assert again.returncode == 0, again.stderr[-3000:]
    assert "restored" not in again.stderr and "not this warehouse's" not in again.stderr, again.stderr
    assert all(_loads(env.warehouse, s) == 1 for s in ALL), "a run with no changes created loads"
    with Simulator(own_fleet.data_dir, seed=10) as sim:  # merges after the swap (staging rebuilt)
        sim.step(200)
    assert run_cli(env).returncode == 0
    assert_matches_source(env, own_fleet.data_dir, ALL)


def test_a_full_refresh_killed_before_its_swap_changes_nothing_and_is_discarded(
    fleet: Fleet, loader: Callable[..., LoaderEnv]
) -> None:
    """kill -9 while the refresh is being built (tiny pages keep the walk long): raw is exactly as it
    was, and the next run discards what the refresh left, says so, and continues from the old state."""
    env = loader(fleet, SOURCES__EXTRACT__PAGE_SIZE="5", SOURCES__EXTRACT__PROGRESS_EVERY_PAGES="5")
    assert run_cli(env, "customers").returncode == 0
    before = raw_exact(env.warehouse, "customers")
    refresh = env.run_dir / "dlt" / "refresh"
    proc = popen_cli(env, "customers", "--full-refresh")
    walking = False
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the walk's first progress line: well before the load and the swap
            if "customers/customers: 5 pages" in line:
                walking = True
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert walking, "the refresh never started walking the customers"
    assert raw_exact(env.warehouse, "customers") == before, "a killed full refresh changed raw_customers"
    assert any(refresh.iterdir()), "the kill left nothing to discard: the case did not happen"

    plain = run_cli(env, "customers")
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert "customers: discarded what an unfinished full refresh left" in plain.stderr, plain.stderr[-3000:]
    assert list(refresh.iterdir()) == []
    assert raw_exact(env.warehouse, "customers") == before, "the run after the kill changed raw_customers"
