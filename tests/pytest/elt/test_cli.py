"""``python -m elt export`` / ``shell`` / ``dbt`` as a user runs them (real subprocesses)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from core import pii_key
from publish import versions
from tests.pytest.elt.helpers import EltPaths, fill_marts, write_dbt_artifacts
from tests.pytest.support.paths import REPO
from tests.pytest.support.sources import child_env
from transform import dbt_runner


def elt(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "elt", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=300,
    )


def test_export_publishes_and_prints_where(fake_project: EltPaths) -> None:
    invocation = write_dbt_artifacts(fake_project.target)
    result = elt("export")
    assert result.returncode == 0, result.stderr
    assert "published version" in result.stdout
    assert str(fake_project.exports / "current") in result.stdout
    assert "fct_orders" in result.stdout and "500 rows" in result.stdout
    manifest = json.loads((fake_project.exports / "current" / "manifest.json").read_text())
    assert manifest["dbt"]["invocation_id"] == invocation
    # the export step is in the run log with per-mart rows
    import duckdb

    with duckdb.connect(str(fake_project.warehouse), read_only=True) as con:
        status, rows = con.execute("select status, rows from ops.runs where step = 'export'").fetchone()
        marts = dict(con.execute("select table_name, rows from ops.run_tables").fetchall())
    assert (status, rows) == ("success", 550)
    assert marts == {"fct_orders": 500, "dim_customers": 50, "rt_orders_today": 0}

    listing = elt("export", "--list")
    assert listing.stdout.strip() == f"* {manifest['version']}"
    verify = elt("export", "--verify")
    assert verify.returncode == 0 and "OK" in verify.stdout


def test_export_refuses_after_a_failed_build(fake_project: EltPaths) -> None:
    write_dbt_artifacts(fake_project.target, failed=True)
    result = elt("export")
    assert result.returncode == 1
    assert "has failures" in result.stderr and "not publishing" in result.stderr
    assert not (fake_project.exports / "current").exists()
    forced = elt("export", "--force")
    assert forced.returncode == 0, forced.stderr


def test_export_refuses_when_the_wrapper_recorded_a_failed_build(fake_project: EltPaths) -> None:
    fake_project.run.mkdir()
    (fake_project.run / "dbt_last_build.json").write_text(
        json.dumps({"args": ["build"], "exit_code": 1, "invocation_id": "x", "finished_at": "then"})
    )
    result = elt("export")
    assert result.returncode == 1
    assert "the last `dbt build` failed (exit 1" in result.stderr
    # the refused export is in the run log as a failed run, with the reason
    import duckdb

    with duckdb.connect(str(fake_project.warehouse), read_only=True) as con:
        status, error = con.execute("select status, error from ops.runs where step = 'export'").fetchone()
    assert status == "failed"
    assert "not publishing marts from a failed build" in error


def test_export_while_a_writer_holds_the_lock(fake_project: EltPaths) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nfrom core.lock import warehouse_lock\n"
            "with warehouse_lock('dbt build --select marts'):\n    print('held', flush=True); time.sleep(60)",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = elt("export", "--wait", "0")
        assert result.returncode == 75
        assert f"already running (pid {holder.pid}: dbt build --select marts)" in result.stderr
        assert not (fake_project.exports / "current").exists()
    finally:
        holder.kill()
        holder.wait()


def test_rollback_switches_current(fake_project: EltPaths) -> None:
    assert elt("export").returncode == 0
    first = versions.current_version_id(fake_project.exports)
    fill_marts(fake_project.warehouse, generation=5)
    assert elt("export").returncode == 0
    assert versions.current_version_id(fake_project.exports) != first
    result = elt("export", "--rollback", first)
    assert result.returncode == 0, result.stderr
    assert versions.current_version_id(fake_project.exports) == first
    assert (fake_project.exports / "CURRENT").read_text().strip() == first
    bad = elt("export", "--rollback", "no-such-version")
    assert bad.returncode == 1 and "has no manifest.json" in bad.stderr


def test_shell_reads_the_warehouse_read_only(fake_project: EltPaths) -> None:
    result = elt("shell", stdin="select count(*) as n from main_marts.fct_orders;\n.tables\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "500" in result.stdout
    assert "fct_orders" in result.stdout and "dim_customers" in result.stdout
    write = elt("shell", "-c", "create table main_marts.oops as select 1")
    assert write.returncode == 1
    assert "read-only" in write.stdout.lower()


def test_shell_over_the_published_parquet(fake_project: EltPaths) -> None:
    assert elt("export").returncode == 0
    result = elt("shell", "--exports", "-c", "select count(*) as n, min(generation) as g from fct_orders")
    assert result.returncode == 0, result.stderr
    assert "500" in result.stdout


def test_shell_explains_a_busy_warehouse(fake_project: EltPaths) -> None:
    script = textwrap.dedent(
        f"""
        import duckdb, time
        con = duckdb.connect({str(fake_project.warehouse)!r})
        print("open", flush=True)
        time.sleep(60)
        """
    )
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "open"
        result = elt("shell", "-c", "select 1")
        assert result.returncode == 1
        assert "the warehouse is being written" in result.stderr
        assert "--exports" in result.stderr
    finally:
        writer.kill()
        writer.wait()


def test_pii_key_generated_once_private(elt_env: EltPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOP_PII_KEY")
    key = pii_key.pii_key()
    path = elt_env.run / "pii.key"
    assert path.read_text().strip() == key and len(key) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert pii_key.pii_key() == key  # reused, so hashed keys stay stable across runs
    env = dbt_runner.dbt_env({})
    assert env["DBT_ENV_SECRET_PII_KEY"] == key
    assert env["SHOP_WAREHOUSE"] == str(elt_env.warehouse)
    monkeypatch.setenv("SHOP_PII_KEY", "operator-key-123456")
    assert dbt_runner.dbt_env({})["DBT_ENV_SECRET_PII_KEY"] == "operator-key-123456"
    assert os.environ.get("DBT_ENV_SECRET_PII_KEY") is None  # never leaked into our own environment


def test_dbt_wrapper_waits_its_turn_and_names_the_holder(elt_env: EltPaths) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\nfrom core.lock import warehouse_lock\n"
            "with warehouse_lock('python -m extract'):\n    print('held', flush=True); time.sleep(60)",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = subprocess.run(
            [sys.executable, "-m", "elt", "dbt", "build", "--select", "marts"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "SHOP_LOCK_WAIT": "1"},
        )
        assert result.returncode == 75
        assert "waiting up to 1s for the warehouse lock" in result.stderr
        assert f"already running (pid {holder.pid}: python -m extract)" in result.stderr
        assert not (elt_env.run / "dbt_last_build.json").exists()  # dbt never started
    finally:
        holder.kill()
        holder.wait()


def test_failed_step_stops_the_flow_and_publishes_nothing(fake_project: EltPaths) -> None:
    """No credentials and --no-services: the extract step fails; the previous version stays current."""
    assert elt("export").returncode == 0
    current = versions.current_version_id(fake_project.exports)
    env = child_env("SOURCES__")
    result = subprocess.run(
        [sys.executable, "-m", "elt", "run", "--no-services"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 1
    assert "elt run FAILED at step 'extract'" in result.stdout
    assert "nothing was published by this run" in result.stdout
    assert versions.current_version_id(fake_project.exports) == current
    assert versions.list_versions(fake_project.exports) == [current]
    import duckdb

    with duckdb.connect(str(fake_project.warehouse), read_only=True) as con:
        rows = dict(
            con.execute(
                "select step, status from ops.runs where command like 'python -m elt run%' "
                "order by started_at"
            ).fetchall()
        )
    assert rows == {"run": "failed", "extract": "failed"}


def test_run_with_an_unknown_source_fails_at_once_naming_the_known_ones(elt_env: EltPaths) -> None:
    """``--sources`` with a typo: exit 2, one line listing the known sources, before any step runs."""
    known = sorted(p.stem for p in (REPO / "sources").glob("*.yml") if "embedded: true" in p.read_text())
    result = subprocess.run(
        [sys.executable, "-m", "elt", "run", "--sources", f"{known[0]},nosuch"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env("SOURCES__"),
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: unknown source(s) nosuch; known: "), lines[0]
    assert all(name in lines[0] for name in known)
    assert not elt_env.warehouse.exists(), "the run started before checking its sources"
