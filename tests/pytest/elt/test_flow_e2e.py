"""``python -m elt run`` end to end, twice: real services (started and stopped by the flow), real loaders,
real ``dbt build``, real publishing. Between the runs the simulator changes the sources; the second run
must load only the changes and publish a new version. While it runs, other writers are refused with
the holder named. No personal data may reach any Parquet file.

Scale 0.02 keeps the two runs around a minute and a half in all (dbt's start-up dominates)."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from publish import versions
from publish.verify import verify_version
from services.simulator import Simulator
from tests.pytest.support.envs import isolated_env
from tests.pytest.support.paths import REPO
from tests.pytest.support.ports import free_port_base

SCALE = "0.02"


@dataclass
class TwoRuns:
    root: Path
    env: dict[str, str]
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    first_version: str | None
    second_version: str | None
    simulated: dict
    busy_export: subprocess.CompletedProcess[str] | None
    busy_extract: subprocess.CompletedProcess[str] | None

    @property
    def warehouse(self) -> Path:
        return Path(self.env["SHOP_WAREHOUSE"])

    @property
    def exports(self) -> Path:
        return Path(self.env["SHOP_EXPORTS_DIR"])


def _env(root: Path) -> dict[str, str]:
    return isolated_env(
        root,
        "SOURCES__",
        "SHOP_",
        "DBT_",
        SHOP_SERVICES_DATA=str(root / "data"),
        SHOP_PORT_BASE=str(free_port_base()),
        SHOP_SCALE=SCALE,
        SHOP_SEED="42",
        # The consistent cut with no margin (as the dbt suite's world): the simulator's changes all commit
        # before a run starts, so every loaded order is settled by the run that loads it, and a run after
        # it has nothing waiting for the cut (elt/build_state.py: rows that change with time build again)
        SHOP_MAX_COMMIT_DELAY_SECONDS="0",
        SHOP_SETTLE_SECONDS="0",
    )


def _elt_run(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "elt", "run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_holder(lock_file: Path, needle: str, proc: subprocess.Popen[str], limit: float = 240) -> bool:
    """Poll the lock file until its holder line mentions ``needle`` (the flow reached that step)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if needle in lock_file.read_text():
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoRuns]:
    root = tmp_path_factory.mktemp("elt-flow")
    env = _env(root)
    first_proc = _elt_run(env)
    out, err = first_proc.communicate(timeout=600)
    first = subprocess.CompletedProcess(first_proc.args, first_proc.returncode, out, err)
    first_version = versions.current_version_id(root / "exports")

    simulated: dict = {}
    if first.returncode == 0:
        with Simulator(root / "data", seed=42) as sim:
            simulated = sim.step(80)

    second_proc = _elt_run(env)
    busy_export = busy_extract = None
    lock_file = Path(env["SHOP_WAREHOUSE"] + ".lock")
    if _wait_for_holder(lock_file, "dbt build", second_proc):
        busy_export = subprocess.run(
            [sys.executable, "-m", "elt", "export", "--wait", "0"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        busy_extract = subprocess.run(
            [sys.executable, "-m", "extract", "--wait", "0"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    out, err = second_proc.communicate(timeout=600)
    second = subprocess.CompletedProcess(second_proc.args, second_proc.returncode, out, err)
    print(_summary(first), _summary(second), sep="\n")  # shown by pytest -s or on failure
    yield TwoRuns(
        root,
        env,
        first,
        second,
        first_version,
        versions.current_version_id(root / "exports"),
        simulated,
        busy_export,
        busy_extract,
    )
    # the flow stops the fleet it started; make sure nothing is left if it crashed half-way
    subprocess.run([sys.executable, "-m", "services", "stop"], cwd=REPO, env=env, capture_output=True)


def _summary(proc: subprocess.CompletedProcess[str]) -> str:
    return proc.stdout[proc.stdout.index("elt run ") :] if "elt run " in proc.stdout else proc.stdout[-3000:]


def _loaded(summary: str) -> dict[str, int]:
    return {
        m[0]: int(m[1].replace(",", "")) for m in re.findall(r"^\s+(raw_\w+\.\w+)\s+([\d,]+)$", summary, re.M)
    }


def test_first_run_succeeds_and_summarises(two_runs: TwoRuns) -> None:
    run = two_runs.first
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = _summary(run)
    assert summary.startswith("elt run OK in ")
    for step in ("services", "extract", "dbt build", "publish", "services stop"):
        assert re.search(rf"^\s+{step}\s+\w+\s+[\d.]+s", summary, re.M), f"no timing for {step}:\n{summary}"
    assert re.search(r"tests \d+ passed, 0 failed", summary)
    assert f"-> {two_runs.exports / 'current'}" in summary
    assert _loaded(summary)["raw_orders.orders"] > 0
    assert re.search(r"^\s+fct_orders\s+[\d,]+ rows", summary, re.M)
    # the fleet it started is stopped again
    status = subprocess.run(
        [sys.executable, "-m", "services", "status"],
        cwd=REPO,
        env=two_runs.env,
        capture_output=True,
        text=True,
    )
    assert status.returncode != 0


def test_second_run_loads_only_changes_and_publishes_a_new_version(two_runs: TwoRuns) -> None:
    run = two_runs.second
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    first, second = _loaded(_summary(two_runs.first)), _loaded(_summary(run))
    assert sum(second.values()) > 0, "the simulator's changes were not loaded"
    assert sum(second.values()) < sum(first.values()) / 4, (first, second)
    assert second.get("raw_customers.customers", 0) < first["raw_customers.customers"] / 2
    assert two_runs.second_version and two_runs.second_version != two_runs.first_version
    assert versions.list_versions(two_runs.exports) == sorted(
        [two_runs.first_version, two_runs.second_version]
    )
    new = versions.read_manifest(two_runs.exports / "versions" / two_runs.second_version)
    old = versions.read_manifest(two_runs.exports / "versions" / two_runs.first_version)
    assert new["sources"]["raw_orders"]["latest_load_id"] > old["sources"]["raw_orders"]["latest_load_id"]
    assert new["dbt"]["invocation_id"] and new["dbt"]["invocation_id"] != old["dbt"]["invocation_id"]


def test_published_versions_match_their_manifests(two_runs: TwoRuns) -> None:
    for version in versions.list_versions(two_runs.exports):
        assert verify_version(two_runs.exports / "versions" / version) == []
    manifest = versions.read_manifest(two_runs.exports / "current")
    assert manifest["marts"], "nothing published"
    assert manifest["marts"]["fct_orders"]["partition_by"]
    assert len(manifest["marts"]["fct_orders"]["files"]) > 1
    # the current files agree with the warehouse marts right now
    with duckdb.connect(str(two_runs.warehouse), read_only=True) as con:
        for name, mart in manifest["marts"].items():
            (rows,) = con.execute(f"select count(*) from {mart['relation']}").fetchone()
            assert rows == mart["rows"], name


def test_other_writers_refused_while_the_flow_builds(two_runs: TwoRuns) -> None:
    assert two_runs.busy_export is not None, "never saw the flow holding the lock for dbt build"
    assert two_runs.busy_export.returncode == 75
    assert "warehouse is locked: already running (pid" in two_runs.busy_export.stderr
    assert "elt run: dbt build" in two_runs.busy_export.stderr
    assert two_runs.busy_extract is not None and two_runs.busy_extract.returncode != 0
    assert "elt run: dbt build" in two_runs.busy_extract.stdout + two_runs.busy_extract.stderr


def test_every_step_is_in_the_run_log(two_runs: TwoRuns) -> None:
    with duckdb.connect(str(two_runs.warehouse), read_only=True) as con:
        rows = con.execute(
            "select step, status, count(*) from ops.runs where command like 'python -m elt run%' "
            "group by all order by all"
        ).fetchall()
        flow_rows = con.execute(
            "select rows, finished_at is not null from ops.runs where step = 'run'"
        ).fetchall()
    got = {(step, status): n for step, status, n in rows}
    for step in ("run", "extract", "dbt", "export"):
        assert got.get((step, "success")) == 2, (step, rows)
    assert all(finished and published > 0 for published, finished in flow_rows)


def _personal_values(data_dir: Path) -> set[str]:
    values: set[str] = set()
    with sqlite3.connect(data_dir / "customers.sqlite") as con:
        for (doc,) in con.execute("select doc from customers"):
            c = json.loads(doc)
            values.update(v for v in (c.get("email"), c.get("phone")) if v)
            values.add(f"{c['first_name']} {c['last_name']}")
            values.update(a["line1"] for a in c.get("addresses") or [] if a.get("line1"))
    return values


def test_no_personal_data_in_any_parquet_file(two_runs: TwoRuns) -> None:
    personal = _personal_values(Path(two_runs.env["SHOP_SERVICES_DATA"]))
    assert len(personal) > 100  # the check is only meaningful with real values to look for
    files = sorted(two_runs.exports.glob("versions/*/**/*.parquet"))
    assert files
    forbidden_columns = {"email", "phone", "first_name", "last_name", "line1", "line2", "street", "address"}
    with duckdb.connect() as con:
        con.execute("create table personal (v varchar)")
        con.executemany("insert into personal values (?)", [[v] for v in personal])
        for f in files:
            cols = con.execute(f"describe select * from read_parquet('{f}')").fetchall()
            names = {c[0].lower() for c in cols}
            assert not names & forbidden_columns, (f, names & forbidden_columns)
            for name, ctype, *_ in cols:
                if ctype != "VARCHAR":
                    continue
                hits = con.execute(
                    f"""select count(*) from read_parquet('{f}') t
                        where t."{name}" in (select v from personal) or t."{name}" like '%_@_%._%'""",
                ).fetchone()[0]
                assert hits == 0, f"{f.relative_to(two_runs.exports)} column {name}: {hits} personal values"


@pytest.fixture(scope="module")
def selected_run(
    two_runs: TwoRuns, tmp_path_factory: pytest.TempPathFactory
) -> subprocess.CompletedProcess[str]:
    """A third run, ``--sources customers``, on a copy of the two runs' folders (so the other cases see
    two runs whatever the order): the simulator changes every source first."""
    root = tmp_path_factory.mktemp("elt-flow-selected")
    ignore = shutil.ignore_patterns("*.lock", "*.pid")
    shutil.copytree(two_runs.root, root, symlinks=True, dirs_exist_ok=True, ignore=ignore)
    env = {**two_runs.env, **{k: v.replace(str(two_runs.root), str(root)) for k, v in two_runs.env.items()}}
    with Simulator(root / "data", seed=43) as sim:
        sim.step(80)
    proc = subprocess.Popen(
        [sys.executable, "-m", "elt", "run", "--sources", "customers"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=600)
    subprocess.run([sys.executable, "-m", "services", "stop"], cwd=REPO, env=env, capture_output=True)
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, out + f"\nwarehouse={env['SHOP_WAREHOUSE']}", err
    )


@pytest.mark.slow  # a whole flow of its own; an unknown name is refused in make test (test_cli.py)
def test_sources_selection_loads_only_those_and_is_in_the_run_log(
    selected_run: subprocess.CompletedProcess[str],
) -> None:
    """``--sources customers``: the extract step loads raw_customers only (every source had changes),
    dbt builds and publishes as usual, and ops.runs records the selection in its command."""
    assert selected_run.returncode == 0, selected_run.stdout[-3000:] + selected_run.stderr[-3000:]
    loaded = _loaded(_summary(selected_run))
    assert loaded and all(table.startswith("raw_customers.") for table in loaded), loaded
    warehouse = selected_run.stdout.rsplit("warehouse=", 1)[1].strip()
    with duckdb.connect(warehouse, read_only=True) as con:
        commands = con.execute(
            "select step, command, status from ops.runs where command like '%--sources%' order by all"
        ).fetchall()
    assert {step for step, _, _ in commands} >= {"run", "extract", "dbt", "export"}, commands
    assert all(cmd == "python -m elt run --sources customers" and s == "success" for _, cmd, s in commands)


@pytest.fixture(scope="module")
def unchanged_run(two_runs: TwoRuns, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A third run with nothing changed in the services, on a copy of the two runs' folders (so the other
    cases see two runs whatever the order); then `python -m elt changes` on it with a var of the project
    changed through its environment."""
    root = tmp_path_factory.mktemp("elt-flow-unchanged")
    ignore = shutil.ignore_patterns("*.lock", "*.pid")
    shutil.copytree(two_runs.root, root, symlinks=True, dirs_exist_ok=True, ignore=ignore)
    env = {k: v.replace(str(two_runs.root), str(root)) for k, v in two_runs.env.items()}
    versions_before = versions.list_versions(root / "exports")
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "elt", "run"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    seconds = time.monotonic() - t0
    subprocess.run([sys.executable, "-m", "services", "stop"], cwd=REPO, env=env, capture_output=True)
    changes = subprocess.run(  # what the next run would do with a var of the project changed
        [sys.executable, "-m", "elt", "changes"],
        cwd=REPO,
        env={**env, "SHOP_SETTLE_SECONDS": "5"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    with duckdb.connect(env["SHOP_WAREHOUSE"], read_only=True) as con:
        steps = con.execute(
            "select step, status, count(*) from ops.runs where command like 'python -m elt run%' group by all"
        ).fetchall()
    print(f"unchanged run: {seconds:.1f}s", _summary(proc), sep="\n")
    return {
        "proc": proc,
        "env": env,
        "versions_before": versions_before,
        "versions_after": versions.list_versions(root / "exports"),
        "current": versions.current_version_id(root / "exports"),
        "changes": changes,
        "steps": {(step, status): n for step, status, n in steps},
    }


def test_a_run_with_nothing_new_skips_dbt_and_publish(two_runs: TwoRuns, unchanged_run: dict) -> None:
    """No new load and no definition change since the last successful run: dbt and publish are skipped,
    the summary says so, the exit is 0 and no export version is made; the run is in the run log."""
    proc = unchanged_run["proc"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = _summary(proc)
    first = summary.splitlines()[0]
    assert re.match(r"elt run OK in [\d.]+s: dbt and publish skipped, nothing new since version ", first), (
        first
    )
    assert two_runs.second_version in first
    assert re.search(r"^\s+dbt build\s+skipped\s", summary, re.M), summary
    assert re.search(r"^\s+publish\s+skipped\s", summary, re.M), summary
    assert "INFO elt.dbt: dbt build" not in proc.stderr  # dbt never started
    # every source probed with nothing new (extract/probe.py): the loader's process never started
    assert re.search(r"INFO extract\.probe: \w+: nothing new since the last load", proc.stderr), proc.stderr
    assert not re.search(r"INFO extract\.probe: \w+: (loading|probe failed)", proc.stderr), proc.stderr
    assert "INFO elt.flow: extract: " not in proc.stderr, proc.stderr[-3000:]
    assert unchanged_run["versions_after"] == unchanged_run["versions_before"]
    assert unchanged_run["current"] == two_runs.second_version
    steps = unchanged_run["steps"]
    assert steps[("run", "success")] == 3 and steps[("extract", "success")] == 3, steps
    assert steps[("dbt", "success")] == 2 and steps[("export", "success")] == 2, steps


def test_changes_says_what_the_next_run_would_do(unchanged_run: dict) -> None:
    var_changed = unchanged_run["changes"]
    assert var_changed.returncode == 0, var_changed.stderr[-2000:]
    build, plan = var_changed.stdout.strip().splitlines()
    assert build == "build: the dbt project's definitions, vars or their env changed (settle_seconds)"
    # the plan: the nodes that name the var and what is downstream of them, not the whole project
    assert plan.startswith("plan: settle_seconds changed") and "--select int_settled_horizon+" in plan, plan


def test_the_second_run_built_because_of_its_new_loads(two_runs: TwoRuns) -> None:
    """The run after the simulator's changes did build (the new loads are the reason it names)."""
    log = two_runs.second.stderr
    assert re.search(r"INFO elt\.flow: build check: .*new load in raw_orders", log), log[-3000:]
