"""SIGTERM and SIGINT to the real flow (``make elt``), as a scheduler, systemd, docker or Ctrl-C send
them: to the make process alone, or to the whole process group, at extract and during dbt's models.

After each: every process of the run is gone (found by the workspace's warehouse in its environment,
not through the project's own records), no ``ops.runs`` row is left ``running`` and the run's rows say
``interrupted``, the output ends with one line and no traceback, ``exports/current`` did not move, and
a plain re-run converges on the clean reference. Short form in ``make test``: SIGTERM to the make
process during extract (the grandchild loader must stop too), without the re-run. The rest is ``slow``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import duckdb
import psutil
import pytest

from tests.pytest.faults.helpers import KILL_POINTS, wait_for
from tests.pytest.support.fingerprints import assert_matches_clean
from tests.pytest.support.paths import REPO
from tests.pytest.support.workspace import Workspace, flow
from tests.pytest.support.world import Reference


def run_processes(warehouse: Path) -> list[str]:
    """Live processes (other than this one) whose environment points at ``warehouse``: the flow, the
    loader, dbt, the make that started them."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if proc.pid == os.getpid():
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get("SHOP_WAREHOUSE") == str(warehouse):
                found.append(f"{proc.pid}: {' '.join(proc.info.get('cmdline') or ())[:120]}")
        except psutil.Error:
            continue
    return found


def _default_signals() -> None:
    """In the child before exec: SIGINT, SIGQUIT and SIGHUP back to their defaults, as a terminal's job
    has them. Why: a suite started in the background (``make test-faults &``, nohup, a CI runner) passes
    them on *ignored*, and GNU make does not catch a signal that was ignored when it started, so it
    would exit 2 on its child's failure instead of dying of the signal the way it does for a user."""
    for signum in (signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def make_elt_signalled(
    ws: Workspace, point: str, signum: int, to_group: bool, timeout: float = 300.0
) -> tuple[int, str]:
    """``make elt`` against the workspace; at ``point`` (helpers.KILL_POINTS) send ``signum`` to the
    make process (``to_group`` False) or to its whole process group. Returns make's exit status (as a
    shell reports it: 128 + signal when a signal ended it) and everything printed."""
    pattern, delay = KILL_POINTS[point]
    marker = re.compile(pattern)
    proc = subprocess.Popen(
        ["make", "--no-print-directory", "elt", "ARGS=--no-services"],
        cwd=REPO,
        env={**ws.env, "SHOP_DBT_OUTPUT": "nodes", "SHOP_STOP_GRACE_SECONDS": "20"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group: the group signal reaches the run only
        preexec_fn=_default_signals,
    )
    sent: list[bool] = []

    def send(wait: float) -> None:
        time.sleep(wait)
        if proc.poll() is None:
            (os.killpg if to_group else os.kill)(proc.pid, signum)
            sent.append(True)

    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    timer = None
    for line in proc.stdout:  # read to EOF: the run's processes keep make's stdout until they end
        lines.append(line)
        if timer is None and marker.search(line):
            timer = threading.Thread(target=send, args=(delay,), daemon=True)
            timer.start()
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail("the signalled run did not end:\n" + "".join(lines[-40:]))
    code = proc.wait()
    if timer is not None:
        timer.join()
    assert sent, f"the run finished before the '{point}' point:\n" + "".join(lines[-40:])
    return (128 - code if code < 0 else code), "".join(lines)


def runs_rows(ws: Workspace) -> list[tuple[str, str, str | None]]:
    with duckdb.connect(str(ws.warehouse), read_only=True) as con:
        return con.execute("select step, status, error from ops.runs order by started_at").fetchall()


def _signal_and_check(
    ws: Workspace, reference: Reference, point: str, signum: int, to_group: bool, rerun: bool = True
) -> None:
    name = signal.Signals(signum).name
    before = ws.current_version()
    code, output = make_elt_signalled(ws, point, signum, to_group)
    assert code == 128 + signum, f"make exited {code}, not {128 + signum}:\n{output[-3000:]}"

    # the make process may end first (it does not wait for its child after a SIGTERM): the run's
    # processes then finish stopping on their own, within the grace period
    assert wait_for(lambda: not run_processes(ws.warehouse), timeout=60), (
        f"processes left after {name} at {point}: {run_processes(ws.warehouse)}"
    )
    assert "Traceback" not in output, output[-4000:]
    stopped = [line for line in output.splitlines() if f"stopped by {name}" in line and "elt run" in line]
    assert stopped, f"no one-line report of the stop:\n{output[-3000:]}"
    assert ws.current_version() == before, f"{name} during {point} moved exports/current"

    rows = runs_rows(ws)
    assert not [r for r in rows if r[1] == "running"], f"rows left running: {rows}"
    assert ("run", "interrupted") in [(step, status) for step, status, _ in rows], rows
    if not rerun:
        return
    out = flow(ws)
    assert out.returncode == 0, f"re-run after {name} during {point} failed: {out.describe()}"
    assert_matches_clean(reference.prints, ws, f"{name} to make during {point}")


def test_sigterm_to_make_during_extract(workspace, reference: Reference, fleet_clean) -> None:
    """make forwards SIGTERM to the flow; the flow stops the loader it started (a grandchild of make),
    which closes its own row as interrupted."""
    ws = workspace("term-make-extract")
    # the re-run that converges is in every slow case (the kill -9 cases prove the same recovery)
    _signal_and_check(ws, reference, "extract", signal.SIGTERM, to_group=False, rerun=False)
    rows = runs_rows(ws)
    assert ("extract", "interrupted") in [(s, st) for s, st, _ in rows], rows


@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "signum", "to_group"),
    [
        ("extract", signal.SIGTERM, False),
        ("extract", signal.SIGTERM, True),
        ("dbt models", signal.SIGTERM, False),
        ("dbt models", signal.SIGTERM, True),
        ("load", signal.SIGINT, True),
        ("dbt models", signal.SIGINT, True),
    ],
    ids=[
        "term-make-extract",
        "term-group-extract",
        "term-make-dbt",
        "term-group-dbt",
        "int-group-load",
        "int-group-dbt",
    ],
)
def test_signal_at_each_step(
    point: str, signum: int, to_group: bool, workspace, reference: Reference, fleet_clean
) -> None:
    ws = workspace(f"sig-{signum}-{int(to_group)}-{point.replace(' ', '-')}")
    _signal_and_check(ws, reference, point, signum, to_group)
