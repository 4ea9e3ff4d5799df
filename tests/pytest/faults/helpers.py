"""Helpers of the fault suite: killing the real flow at a chosen point, stopping a service, filling a disk.
Workspaces and running the flow: tests/pytest/support/workspace.py; the comparison with a clean run:
tests/pytest/support/fingerprints.py."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.pytest.support.paths import REPO
from tests.pytest.support.workspace import Outcome, Workspace, flow, save_log

# Kill points: a regex on the flow's output, and a delay after it (so "load" lands after the walk).
KILL_POINTS: dict[str, tuple[str, float]] = {
    "extract": (r"INFO elt\.flow: extract:", 2.0),
    "normalize": (r"extract\.progress: orders/orders: done", 0.12),
    "load": (r"extract\.progress: events/events: done", 0.35),
    "dbt models": (r"START sql (table|incremental) model marts\.", 0.0),
    # the row drop guards (source tests) start first: a "dbt tests" kill lands among the model tests
    "dbt tests": (r"START test (?!\S*row_drop_guard)", 0.3),
    "snapshots": (r"START snapshot ", 0.0),
    "publish": (r"INFO elt\.publish: published ", 0.0),
}


def flow_args(full_build: bool) -> list[str]:
    """``elt run`` against the workspace's services; ``full_build``: dbt and publish run even when nothing
    is new (after a complete run an unchanged flow skips both, and a kill aimed at them would find nothing
    to kill: elt/build_state.py)."""
    return ["-m", "elt", "run", "--no-services", *(["--full-build"] if full_build else [])]


def flow_killed_at(
    ws: Workspace, point: str, extra_delay: float = 0.0, timeout: float = 300.0, full_build: bool = False
) -> Outcome:
    """Start the flow and ``kill -9`` its whole process group (flow, loader, dbt) at ``point``.

    The kill happens when the point's marker line appears (plus its delay and ``extra_delay``); if
    the flow finishes first, the outcome says so (``killed_at`` None) and the caller decides.
    """
    pattern, delay = KILL_POINTS[point]
    marker = re.compile(pattern)
    args = flow_args(full_build)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env={**ws.env, "SHOP_DBT_OUTPUT": "nodes"},  # the dbt kill points wait for dbt's START lines
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    killed: list[str] = []

    def kill_later(wait: float) -> None:
        time.sleep(wait)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            killed.append(point)

    timer: threading.Thread | None = None
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        if timer is None and marker.search(line):
            timer = threading.Thread(target=kill_later, args=(delay + extra_delay,), daemon=True)
            timer.start()
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            break
    code = proc.wait()
    if timer is not None:
        timer.join()
    out = Outcome(args, code, "".join(lines), killed[0] if killed else None, time.monotonic() - t0)
    save_log(ws, out)
    return out


def flow_killed_after(
    ws: Workspace, seconds: float, timeout: float = 300.0, full_build: bool = False
) -> Outcome:
    """Start the flow and ``kill -9`` its process group after ``seconds`` (a random moment)."""
    args = flow_args(full_build)
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env=ws.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, _ = proc.communicate(timeout=seconds)
        killed = None
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, _ = proc.communicate(timeout=timeout)
        killed = f"{seconds:.1f}s"
    out = Outcome(args, proc.returncode, stdout, killed, seconds)
    save_log(ws, out)
    return out


# ---------------------------------------------------------------------------------------------------------
def recover_until_clean(ws: Workspace, attempts: int = 1) -> Outcome:
    """Re-run the flow (the documented recovery for any kill) and return the last outcome."""
    out = flow(ws)
    for _ in range(attempts - 1):
        if out.returncode == 0:
            break
        out = flow(ws)
    return out


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout``; a synchronisation aid, never an assertion on speed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def flow_with_action(
    ws: Workspace, pattern: str, action: Callable[[], None], timeout: float = 300.0
) -> tuple[Outcome, bool]:
    """Run the flow and call ``action`` (once, in a thread) when a line matches ``pattern``.

    Returns the outcome and whether the action ran (it is how a case brings a service back mid-run).
    """
    marker = re.compile(pattern)
    args = ["-m", "elt", "run", "--no-services"]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env=ws.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    worker: threading.Thread | None = None
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if worker is None and marker.search(line):
            worker = threading.Thread(target=action, daemon=True)
            worker.start()
    code = proc.wait(timeout=timeout)
    if worker is not None:
        worker.join(timeout=60)
    out = Outcome(args, code, "".join(lines), seconds=time.monotonic() - t0)
    save_log(ws, out)
    return out, worker is not None


def stop_service(fleet_obj: object, name: str) -> None:
    """Stop one service of a ``Fleet`` (SIGTERM, then SIGKILL) through its pid file."""
    import psutil

    pid_file = fleet_obj.pid_file(name)  # type: ignore[attr-defined]
    pid = int(pid_file.read_text().strip())
    proc = psutil.Process(pid)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    pid_file.unlink(missing_ok=True)


def mount_tmpfs(path: Path, size: str) -> bool:
    """Mount a small tmpfs at ``path`` (root only); False when this machine does not allow it."""
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return proc.returncode == 0


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True, capture_output=True)


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)
