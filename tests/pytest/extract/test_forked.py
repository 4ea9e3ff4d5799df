"""Services extracted in a forked child process (extract/forked.py): same data as the threaded path,
clear failures when the child dies, and a re-run that converges. Real processes: `python -m extract`
forks only when it is single-threaded, which a pytest worker is not, so these run the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from extract.forked import start_child
from services.launcher import Fleet
from tests.pytest.extract.helpers import LoaderEnv, assert_matches_source, popen_cli, run_cli

ALL = ("customers", "catalog", "orders", "payments", "events")


def _raw_tables(env: LoaderEnv) -> dict[str, list[tuple]]:
    """Every raw table's business columns (dlt's own columns left out), sorted."""
    con = env.con()
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema like 'raw\\_%' escape '\\'"
            " and table_schema not like '%\\_staging' escape '\\'"
            " and table_name not like '\\_dlt%' escape '\\' order by 1, 2"
        ).fetchall()
        out = {}
        for schema, table in tables:
            cols = [
                r[0]
                for r in con.execute(
                    "select column_name from information_schema.columns where table_schema = ? and "
                    "table_name = ? and column_name not like '\\_dlt%' escape '\\' order by column_name",
                    [schema, table],
                ).fetchall()
            ]
            out[f"{schema}.{table}"] = con.execute(
                f'select {", ".join(cols)} from "{schema}"."{table}" order by all'
            ).fetchall()
        return out
    finally:
        con.close()


def _endpoint_counts(env: LoaderEnv) -> list[tuple]:
    con = env.con()
    try:
        return con.execute(
            "select source, endpoint, expected_rows, walked_rows, loaded_rows, status from ops.run_endpoints"
            " order by all"
        ).fetchall()
    finally:
        con.close()


def test_forked_and_threaded_loads_are_identical(
    fleet: Fleet, loader: Callable[..., LoaderEnv], tmp_path: Path
) -> None:
    env = loader(fleet)
    forked = run_cli(env)
    assert forked.returncode == 0, forked.stderr[-3000:]
    assert forked.stderr.count("in a child process") == 4, forked.stderr[-3000:]  # events stays here
    assert_matches_source(env, fleet.data_dir, ALL)
    by_fork = _raw_tables(env)

    wh, run_dir = tmp_path / "threaded.duckdb", tmp_path / "threaded-run"
    threaded_env = LoaderEnv(
        env.root, wh, run_dir, {**env.env, "SHOP_WAREHOUSE": str(wh), "SHOP_RUN_DIR": str(run_dir)}
    )
    threaded = run_cli(threaded_env, extra={"SOURCES__EXTRACT__PROCESSES": "false"})
    assert threaded.returncode == 0, threaded.stderr[-3000:]
    assert "in a child process" not in threaded.stderr
    assert _raw_tables(threaded_env) == by_fork
    # the per-endpoint counts of ops.run_endpoints cross the process boundary too
    by_fork_counts, threaded_counts = _endpoint_counts(env), _endpoint_counts(threaded_env)
    assert by_fork_counts == threaded_counts and len(by_fork_counts) == 8, by_fork_counts
    assert all(
        walked == loaded > 0 or endpoint == "deletions"
        for _, endpoint, _, walked, loaded, _ in by_fork_counts
    )

    again = run_cli(env)  # nothing changed: the forked path loads nothing
    assert again.returncode == 0, again.stderr[-3000:]
    con = env.con()
    try:
        assert con.execute("select rows from ops.runs order by started_at desc limit 1").fetchone() == (0,)
    finally:
        con.close()


def test_a_killed_child_fails_its_services_and_the_rerun_converges(
    own_fleet: Fleet, loader: Callable[..., LoaderEnv]
) -> None:
    """SIGKILL the child mid-walk: its services are reported failed (exit 1) with what happened, the
    parent's own service still loads, and the next run loads exactly the source."""
    env = loader(own_fleet, SOURCES__EXTRACT__PAGE_SIZE="50")
    own_fleet.admin("customers").set_faults({"latency_ms": 400})  # the child's first service walks slowly
    proc = popen_cli(env)
    child = None
    deadline = time.monotonic() + 60
    while child is None and time.monotonic() < deadline:
        found = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        child = int(found[0]) if found else None
        time.sleep(0.05)
    assert child is not None, "the loader forked no child"
    time.sleep(1.0)  # well inside the slow customers walk
    os.kill(child, signal.SIGKILL)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out[-3000:]
    assert f"extract child process (pid {child}) was killed by signal 9 before finishing customers" in out
    assert "events: loaded" in out  # the parent's service is unaffected
    con = env.con()
    try:
        (status,) = con.execute("select status from ops.runs").fetchone()
        assert status == "failed"
    finally:
        con.close()

    own_fleet.admin("customers").clear_faults()
    final = run_cli(env)
    assert final.returncode == 0, final.stderr[-3000:]
    assert_matches_source(env, own_fleet.data_dir, ALL)


class _Exits:
    """A stand-in service whose credentials lookup ends the child with SystemExit (not an Exception):
    the child dies without reporting, as on any crash outside the per-service handler."""

    name = "customers"

    @property
    def auth(self) -> str:
        raise SystemExit(5)


def test_a_child_that_dies_before_reporting_is_a_clear_failure() -> None:
    child = start_child([_Exits()], full_refresh=False, cutoff=None)  # type: ignore[list-item, arg-type]
    outcomes = dict(child.outcomes())
    assert list(outcomes) == ["customers"]
    error = outcomes["customers"].error or ""
    assert f"(pid {child.pid}) exited with code 70 before finishing customers" in error, error
    assert "nothing of it was loaded" in error
