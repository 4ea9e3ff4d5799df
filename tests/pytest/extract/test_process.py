"""The loader as a real process: kill -9 at random points, two concurrent runs, and no secret anywhere."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from extract.runner import main
from services.launcher import Fleet
from tests.pytest.extract.helpers import LoaderEnv, assert_matches_source, popen_cli, run_cli

KILL_SERVICES = ("customers", "orders", "events")


def _kill_at_random_points(env: LoaderEnv, times: int, seed: int) -> list[float]:
    """Start the loader and SIGKILL it after a random delay, ``times`` times in a row."""
    rng = random.Random(seed)
    points = []
    for _ in range(times):
        delay = rng.uniform(2.0, 7.0)
        proc = popen_cli(env, *KILL_SERVICES)
        time.sleep(delay)
        proc.kill()  # SIGKILL: no cleanup of any kind
        proc.wait(timeout=30)
        points.append(round(delay, 2))
    return points


def _rerun_is_exact(fleet: Fleet, env: LoaderEnv, points: list[float]) -> None:
    final = run_cli(env, *KILL_SERVICES)
    assert final.returncode == 0, f"re-run after kills at {points}s failed:\n{final.stderr[-3000:]}"
    assert_matches_source(env, fleet.data_dir, KILL_SERVICES)


@pytest.fixture
def small_pages(fleet: Fleet, loader: Callable[..., LoaderEnv]) -> LoaderEnv:
    """Small pages so a run lasts long enough to be killed in extract, normalize or load."""
    return loader(fleet, SOURCES__EXTRACT__PAGE_SIZE="300")


def test_kill_9_twice_then_rerun_is_exact(fleet: Fleet, small_pages: LoaderEnv) -> None:
    """Killed at two random points (extract, normalize or load), the next run ends exact, no duplicates.
    ``--recover`` after a kill is covered by test_faults (a package that fails every time)."""
    _rerun_is_exact(fleet, small_pages, _kill_at_random_points(small_pages, times=2, seed=1))


@pytest.mark.slow
def test_kill_9_ten_times_then_rerun_is_exact(fleet: Fleet, small_pages: LoaderEnv) -> None:
    _rerun_is_exact(fleet, small_pages, _kill_at_random_points(small_pages, times=10, seed=2))


def test_second_concurrent_run_gets_a_clear_error(
    no_faults: Fleet, loader: Callable[..., LoaderEnv], caplog: pytest.LogCaptureFixture
) -> None:
    env = loader(no_faults, SOURCES__EXTRACT__PAGE_SIZE="10")
    no_faults.admin("catalog").set_faults({"latency_ms": 300})
    first = popen_cli(env, "catalog")
    lock = Path(str(env.warehouse) + ".lock")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (lock.exists() and lock.read_text().startswith("pid")):
        time.sleep(0.05)
    assert lock.read_text().startswith(f"pid {first.pid}")
    assert main(["catalog"]) == 3
    assert f"already running (pid {first.pid}: extract catalog)" in caplog.text
    waited = main(["catalog", "--wait", "120"])  # queues behind the first, then finds nothing new
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out[-2000:]
    assert waited == 0
    no_faults.admin("catalog").clear_faults()
    assert_matches_source(env, no_faults.data_dir, ("catalog",))


def _credentials(fleet: Fleet) -> dict[str, str]:
    return {
        k: v
        for k, v in fleet.env().items()
        if (k.startswith("SOURCES__") and not k.endswith("BASE_URL")) or k == "SHOP_ADMIN_TOKEN"
    }


def test_secrets_never_leak_with_debug_logging_and_a_failing_run(
    no_faults: Fleet, loader: Callable[..., LoaderEnv]
) -> None:
    env = loader(no_faults, SOURCES__EXTRACT__MAX_ATTEMPTS="2", SOURCES__EXTRACT__BACKOFF_BASE="0.05")
    no_faults.admin("orders").set_faults({"token_expire_after": 2, "error_burst": 3})
    no_faults.admin("payments").set_faults({"drift_remove": "currency"})
    proc = run_cli(
        env, "customers", "orders", "payments", "--log-level", "DEBUG", extra={"RUNTIME__LOG_LEVEL": "DEBUG"}
    )
    assert proc.returncode != 0
    assert "orders" in proc.stderr and "FAILED" in proc.stderr
    assert "DEBUG" in proc.stderr  # debug logging really was on
    no_faults.admin("orders").clear_faults()
    no_faults.admin("payments").clear_faults()
    # the working folder (traces, state, packages), the warehouse file and its tables
    blobs: dict[str, bytes] = {"stdout+stderr": (proc.stdout + proc.stderr).encode()}
    for path in [*env.run_dir.rglob("*"), *env.warehouse.parent.rglob("*")]:
        if path.is_file():
            blobs[str(path)] = path.read_bytes()
    con = env.con()
    try:
        tables = con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type = 'VARCHAR'"
        ).fetchall()
        for schema, table, column in tables:
            values = con.execute(f'select distinct "{column}" from {schema}."{table}"').fetchall()
            blobs[f"{schema}.{table}.{column}"] = "\n".join(str(v[0]) for v in values).encode()
    finally:
        con.close()
    assert any("trace" in name for name in blobs), sorted(blobs)[:20]
    for name, secret in _credentials(no_faults).items():
        for where, blob in blobs.items():
            assert secret.encode() not in blob, f"{name} found in {where}"
    assert re.search(r"orders .*failed after 2 attempt", proc.stderr)
