"""A private world for the dbt suite: its own fleet, warehouse and dbt target folder, and the calls
that move data through it (extract, simulate, dbt). Real processes throughout: the services on
loopback, `python -m extract` and `dbt` as subprocesses, exactly as `make elt` runs them.

The world starts as a copy of the shared clean run (tests/pytest/support/world.py: services data, warehouse,
dlt working folder and dbt target after `python -m elt run`), served by a fleet of its own, so the
suite may change data without disturbing the fault suite that compares against the original.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from services.launcher import Fleet
from tests.pytest.support.fleets import new_fleet
from tests.pytest.support.paths import REPO
from tests.pytest.support.sources import child_env
from tests.pytest.support.workspace import Outcome, Workspace, make_workspace, run
from tests.pytest.support.world import PII_KEY, SCALE, Reference

__all__ = ["PII_KEY"]  # the suite's cases import the key the shared build used from here
INCREMENTAL_MODELS = (
    "fct_orders",
    "fct_order_items",
    "fct_payments",
    "rt_events_per_minute",
    "rt_orders_today",
)


@dataclass
class DbtWorld:
    """One fleet + one warehouse + one dbt target folder, all under ``root``."""

    root: Path
    fleet: Fleet
    warehouse: Path = field(init=False)
    target: Path = field(init=False)

    def __post_init__(self) -> None:
        self.warehouse = self.root / "wh.duckdb"
        self.target = self.root / "target"

    @property
    def data_dir(self) -> Path:
        return self.fleet.data_dir

    def env(self) -> dict[str, str]:
        """Environment for extract and dbt: the fleet's credentials, private paths, the test PII key."""
        env = child_env()
        env.update({k: v for k, v in self.fleet.env().items() if k.startswith("SOURCES__")})
        env.update(
            {
                "SHOP_WAREHOUSE": str(self.warehouse),
                "SHOP_RUN_DIR": str(self.root / "run"),
                "DBT_ENV_SECRET_PII_KEY": PII_KEY,
                "DBT_TARGET_PATH": str(self.target),
                "DBT_LOG_PATH": str(self.root / "dbt-logs"),
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                "RUNTIME__DLTHUB_TELEMETRY": "false",
                # the consistent cut's assumptions (docs/consistency.md) hold with no margin here: every
                # simulator step has committed before the extract starts, and one step stamps a cause and
                # its effect alike, so every loaded change is settled and the marts can be compared whole
                "SHOP_MAX_COMMIT_DELAY_SECONDS": "0",
                "SHOP_SETTLE_SECONDS": "0",
            }
        )
        env.pop("DBT_PROFILES_DIR", None)
        return env

    def extract(self) -> None:
        """`python -m extract` into this world's warehouse (all five services)."""
        proc = subprocess.run(
            [sys.executable, "-m", "extract"], cwd=REPO, env=self.env(), capture_output=True, text=True
        )
        assert proc.returncode == 0, f"extract failed:\n{proc.stderr[-4000:]}"

    def dbt(self, *args: str) -> dict[str, Any]:
        """Run dbt from the repo root (profile found there); returns run_results.json."""
        started = time.time()
        proc = subprocess.run(
            [str(Path(sys.executable).with_name("dbt")), *args],
            cwd=REPO,
            env=self.env(),
            capture_output=True,
            text=True,
        )
        results_file = self.target / "run_results.json"
        results = json.loads(results_file.read_text()) if results_file.exists() else {}
        results["_exit_code"] = proc.returncode
        results["_stdout"] = proc.stdout
        results["_fresh"] = results_file.exists() and results_file.stat().st_mtime >= started - 1
        return results

    def simulate(self, steps: int, seed: int = 7) -> dict[str, Any]:
        """Apply ``steps`` realistic changes to the services' SQLite files (the fleet serves them live)."""
        from services.simulator import Simulator

        return Simulator(self.data_dir, seed).step(steps)

    def con(self) -> duckdb.DuckDBPyConnection:
        """A connection to the warehouse; callers close it before the next dbt or extract call."""
        con = duckdb.connect(str(self.warehouse))
        con.execute("set TimeZone = 'UTC'")
        return con

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.target / "manifest.json").read_text())


def failures(results: dict[str, Any]) -> list[str]:
    """Every node of a dbt run that did not pass, with its message."""
    return [
        f"{r['unique_id']}: {r['status']} {r.get('message')}"
        for r in results.get("results", [])
        if r["status"] not in ("success", "pass")
    ]


def world_from_reference(root: Path, reference: Reference, source_data: Path) -> DbtWorld:
    """A world holding a copy of the shared clean run: its services data (served by a fleet of its own),
    its warehouse, its dlt working folder (incremental state) and its dbt target folder.

    Copied with no writer open: the reference workspace is only written by its own finished flow.
    """
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source_data, root / "data")
    ws = reference.workspace
    fleet = new_fleet(root / "fleet-run", root / "data", scale=SCALE, seed=42)
    world = DbtWorld(root=root, fleet=fleet)
    shutil.copyfile(ws.warehouse, world.warehouse)
    shutil.copytree(ws.root / "target", world.target)
    if (ws.run_dir / "dlt").is_dir():
        shutil.copytree(ws.run_dir / "dlt", root / "run" / "dlt")
    fleet.start()
    return world


def reference_build(reference: Reference) -> dict[str, Any]:
    """The shared clean run's ``dbt build`` in the shape ``DbtWorld.dbt`` returns: its run_results.json,
    the wrapper's exit code for it, the flow's output, and whether run_results.json is that build's."""
    ws = reference.workspace
    results_file = ws.root / "target" / "run_results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    record = json.loads((ws.run_dir / "dbt_last_build.json").read_text())
    results["_exit_code"] = record["exit_code"] if record["args"] == ["build"] else -1
    results["_stdout"] = reference.outcome.output
    results["_fresh"] = bool(results) and results["metadata"]["invocation_id"] == record["invocation_id"]
    return results


@dataclass
class FlowWorld:
    """A copy of the shared clean run's whole workspace (warehouse, exports, run folder with the recorded
    build state and dlt state, dbt target) served by a fleet of its own on a copy of its source data:
    ``python -m elt run`` here is the next run of that workspace, as an operator's would be."""

    ws: Workspace
    fleet: Fleet

    @property
    def target(self) -> Path:
        return Path(self.ws.env["DBT_TARGET_PATH"])

    def run(self, *args: str) -> Outcome:
        """``python -m elt run --no-services`` (and ``args``) against this world's fleet."""
        return run(self.ws, ["-m", "elt", "run", "--no-services", *args], timeout=900)

    def run_results(self) -> dict[str, Any]:
        return json.loads((self.target / "run_results.json").read_text())

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.target / "manifest.json").read_text())

    def change(self, kind: str, n: int, seed: int = 11) -> dict[str, Any]:
        """``n`` changes of one kind, stamped now (``Simulator.change``): e.g. ``browse_session`` touches
        the events service only, ``price_change`` the catalog only."""
        from services.simulator import Simulator

        with Simulator(self.fleet.data_dir, seed) as sim:
            return sim.change(kind, n)

    def con(self, read_only: bool = True) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(str(self.ws.warehouse), read_only=read_only)
        con.execute("set TimeZone = 'UTC'")
        return con


def flow_world_from_reference(root: Path, reference: Reference, source_data: Path, **env: str) -> FlowWorld:
    """A ``FlowWorld`` under ``root`` (``env`` added to its environment). Copied with no writer open: the
    reference workspace is only written by its own finished flow."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source_data, root / "data")
    fleet = new_fleet(root / "fleet-run", root / "data", scale=SCALE, seed=42)
    ws = make_workspace(root / "ws", fleet.env(), PII_KEY)
    ws.env.update(SHOP_REPORT="off", **env)
    src = reference.workspace
    shutil.copyfile(src.warehouse, ws.warehouse)
    for name in ("exports", "run", "target"):
        if (src.root / name).is_dir():
            shutil.copytree(src.root / name, ws.root / name, symlinks=True, dirs_exist_ok=True)
    fleet.start()
    return FlowWorld(ws, fleet)


def descendants(manifest: dict[str, Any], roots: set[str]) -> set[str]:
    """``roots`` and every node downstream of them in a dbt manifest (its ``child_map``)."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        uid = stack.pop()
        if uid not in seen:
            seen.add(uid)
            stack.extend(manifest["child_map"].get(uid, []))
    return seen
