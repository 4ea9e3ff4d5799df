"""The Dagster run worker's dbt dies with the worker (orchestration/dbt-tied): dagster-dbt starts dbt
without a hook for the child, so the resource's executable is a wrapper that asks the kernel for
SIGTERM on the parent's death and then becomes the real program. Checked with real processes: a parent
killed with SIGKILL, and the wrapper standing in front of the real dbt."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil

from orchestration import dbt_assets
from tests.pytest.support.paths import REPO
from tests.pytest.support.processes import gone

# a stand-in run worker: starts its "dbt" (here `sleep`, through the wrapper) and reports the child's pid
PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    child = subprocess.Popen([sys.argv[1], "300"])
    print(child.pid, flush=True)
    time.sleep(300)
    """
)


def _orphan_after_parent_killed(executable: str, env: dict[str, str]) -> int:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, executable], env=env, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    deadline = time.monotonic() + 60
    while psutil.Process(child).name() != "sleep":  # the wrapper has become the program
        assert time.monotonic() < deadline, "the wrapper never exec'd the program"
        time.sleep(0.05)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    return child


def test_dbt_started_through_the_wrapper_dies_with_a_killed_run_worker() -> None:
    env = {**os.environ, "SHOP_TIED_DBT": "/bin/sleep", "SHOP_TIED_PYTHON": sys.executable}
    child = _orphan_after_parent_killed(os.fspath(dbt_assets.TIED_DBT), env)
    assert gone(child, 30), "the child outlived its killed parent"


def test_without_the_wrapper_the_child_outlives_its_killed_parent() -> None:
    """The control: what the wrapper prevents does happen without it."""
    child = _orphan_after_parent_killed("/bin/sleep", dict(os.environ))
    try:
        assert not gone(child, 2)
    finally:
        os.kill(child, signal.SIGKILL)


def test_the_resource_runs_the_real_dbt_through_the_wrapper() -> None:
    resource = dbt_assets.dbt_resource()
    assert resource.dbt_executable == os.fspath(dbt_assets.TIED_DBT)
    out = subprocess.run(
        [resource.dbt_executable, "--version"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and "installed: 1.11." in out.stdout, out.stdout + out.stderr
