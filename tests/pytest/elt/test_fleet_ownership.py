"""The local fleet belongs to whoever started it: what a flow run starts and stops (elt/fleet.py and the
launcher's owner record and leases, services/fleet_records.py).

Each case runs its own fleet (own run folder, free ports) on the shared fleet's data (services only
read it), and checks what is left by itself: every process whose command line runs a service app and
whose ``SHOP_RUN_DIR`` is the case's run folder, by pid — not through the launcher's own records.

"A run" here is either a real ``python -m elt run`` or a small process doing exactly what the flow's
services step does (``elt.fleet.ensure_up``, then ``elt.fleet.stop`` at the end), which lets the case
decide when each run ends.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from services.launcher import SERVICES, Fleet
from tests.pytest.elt.helpers import EltPaths
from tests.pytest.support.paths import REPO
from tests.pytest.support.ports import free_port_base
from tests.pytest.support.sources import child_env

# One fleet user, as the flow's services step: lease (starting what is down), report, wait, release.
FLEET_USER = """
import sys
from elt import fleet
handle = fleet.ensure_up()
print("up", handle.started, flush=True)
sys.stdin.readline()
fleet.stop(handle)
print("released", flush=True)
"""


def service_processes(run_dir: Path) -> dict[int, str]:
    """pid → service of every live service process started for ``run_dir`` (cmdline + environment)."""
    found: dict[int, str] = {}
    for proc in psutil.process_iter(["cmdline"]):
        command = " ".join(proc.info.get("cmdline") or ())
        name = next((n for n in SERVICES if f"services.{n}.app:app" in command), None)
        if name is None:
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if Path(proc.environ().get("SHOP_RUN_DIR", "/nonexistent")).resolve() == run_dir.resolve():
                found[proc.pid] = name
        except psutil.Error:
            continue
    return found


def loader_processes(run_dir: Path) -> list[int]:
    """pids of live `python -m extract` processes whose ``SHOP_RUN_DIR`` is ``run_dir``."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if "extract" not in (proc.info.get("cmdline") or []):
            continue
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE and proc.environ().get("SHOP_RUN_DIR") == str(run_dir):
                found.append(proc.pid)
    return found


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def answering(port_base: int) -> list[str]:
    """The services answering ``/health`` on ``port_base`` + 1 … + 5."""
    up = []
    for i, name in enumerate(SERVICES, start=1):
        try:
            resp = requests.get(f"http://127.0.0.1:{port_base + i}/health", timeout=2)
            if resp.status_code == 200 and resp.json().get("service") == name:
                up.append(name)
        except (requests.RequestException, ValueError):
            pass
    return up


def kill_all(run_dir: Path) -> None:
    """Clean-up for a failing case: SIGKILL whatever service of ``run_dir`` is left."""
    for pid in service_processes(run_dir):
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).send_signal(signal.SIGKILL)


def fleet_env(run_dir: Path, data_dir: Path, port_base: int, **extra: str) -> dict[str, str]:
    """An environment whose fleet is ``run_dir``'s on ``port_base``, nothing inherited from the caller's."""
    env = child_env("SOURCES__", "SHOP_FAULTS", "SHOP_PORT")
    env.update(
        SHOP_RUN_DIR=str(run_dir), SHOP_SERVICES_DATA=str(data_dir), SHOP_PORT_BASE=str(port_base), **extra
    )
    return env


class FleetUser:
    """A process holding the fleet the way a flow run does; ``release()`` ends its run."""

    def __init__(self, env: dict[str, str]):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FLEET_USER],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_up(self) -> bool | None:
        """Whether this user started something (None: ensure_up failed; the output says why)."""
        for line in self.proc.stdout:  # (a launcher may print its own lines first)
            if line.startswith("up "):
                return line.split()[1] == "True"
        return None

    def release(self) -> str:
        out, err = self.proc.communicate("\n", timeout=120)
        assert self.proc.returncode == 0, f"the fleet user failed:\n{out}\n{err[-3000:]}"
        return out

    def output(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        out, err = self.proc.communicate(timeout=30)
        return out + err[-3000:]


def test_two_runs_using_one_fleet_at_once_leave_no_service_behind(fleet: Fleet, tmp_path: Path) -> None:
    """Both start at the same moment on a stopped fleet: one starts it, the other uses it. The fleet
    stays up while either still uses it, and is gone (every process, by pid) once both are done."""
    run_dir, base = tmp_path / "run", free_port_base()
    env = fleet_env(run_dir, fleet.data_dir, base)
    users = [FleetUser(env), FleetUser(env)]
    try:
        started = [user.wait_up() for user in users]
        assert None not in started, "a run could not get the fleet:\n" + "\n".join(u.output() for u in users)
        assert sorted(started) == [False, True], f"exactly one run starts the fleet: {started}"
        pids = service_processes(run_dir)
        assert sorted(pids.values()) == sorted(SERVICES), f"one process per service: {pids}"

        starter, other = (users[0], users[1]) if started[0] else (users[1], users[0])
        assert "released" in starter.release()
        assert answering(base) == list(SERVICES), "the run that started the fleet stopped it under the other"
        assert service_processes(run_dir) == pids

        assert "released" in other.release()
        left = service_processes(run_dir)
        assert not left, f"service processes left behind: {left}"
        assert not [pid for pid in pids if alive(pid)]
        assert answering(base) == []
    finally:
        for user in users:
            if user.proc.poll() is None:
                user.proc.kill()
        kill_all(run_dir)


def test_a_run_that_restarts_a_service_of_the_users_fleet_stops_nothing_of_it(
    fleet: Fleet, tmp_path: Path
) -> None:
    """The user's fleet lost orders; a run restarts it and ends: all five stay up, the restarted one
    included (it joined the user's fleet), and the user's `services stop` then stops all five."""
    run_dir, base = tmp_path / "run", free_port_base()
    env = fleet_env(run_dir, fleet.data_dir, base)
    where = ["--run-dir", str(run_dir), "--data-dir", str(fleet.data_dir), "--port-base", str(base)]
    cli = [sys.executable, "-m", "services"]
    try:
        up = subprocess.run([*cli, "start", *where], cwd=REPO, env=env, capture_output=True, text=True)
        assert up.returncode == 0, up.stdout + up.stderr
        before = service_processes(run_dir)
        orders = next(pid for pid, name in before.items() if name == "orders")
        victim = psutil.Process(orders)
        victim.kill()
        victim.wait(timeout=10)
        assert "orders" not in answering(base)

        user = FleetUser(env)
        assert user.wait_up() is True, f"the run did not restart orders:\n{user.output()}"
        user.release()

        after = service_processes(run_dir)
        assert answering(base) == list(SERVICES), "the run stopped services of the user's fleet"
        kept = {pid: name for pid, name in before.items() if name != "orders"}
        assert {pid: name for pid, name in after.items() if name != "orders"} == kept, "the user's four moved"
        assert list(after.values()).count("orders") == 1, f"the restarted orders is still up: {after}"

        stopped = subprocess.run([*cli, "stop", *where], cwd=REPO, env=env, capture_output=True, text=True)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert service_processes(run_dir) == {}, "the user's stop stops the restarted service too"
    finally:
        kill_all(run_dir)


def test_a_failure_at_the_services_step_leaves_nothing_running(
    fleet: Fleet, elt_env: EltPaths, tmp_path: Path
) -> None:
    """`python -m elt run` whose fleet cannot start its fifth service (its log path is a folder): the run
    fails at the services step, says why, and the four services it had started are stopped again."""
    base = free_port_base()
    elt_env.run.mkdir()
    (elt_env.run / "events.log").mkdir()  # events, started last, cannot open its log
    env = fleet_env(elt_env.run, fleet.data_dir, base)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "elt", "run"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = proc.stdout + proc.stderr
        assert proc.returncode == 1, output
        assert "FAILED at step 'services'" in output, output
        left = service_processes(elt_env.run)
        assert not left, f"the services the run started are still running: {left}"
        assert "cannot start events" in output, output
        assert answering(base) == []
        assert not (elt_env.run / "fleet.owner.json").exists()
        assert not list((elt_env.run / "leases").glob("*.json"))
    finally:
        kill_all(elt_env.run)


def test_a_stale_lease_of_a_killed_run_is_ignored(fleet: Fleet, tmp_path: Path) -> None:
    """A run killed with SIGKILL never releases: its lease names a dead pid. The next run that uses the
    fleet is then its only user, and stops it when it ends."""
    run_dir, base = tmp_path / "run", free_port_base()
    fl = Fleet(run_dir=run_dir, data_dir=fleet.data_dir, port_base=base)
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        assert fl.use(killed.pid) == list(SERVICES)
        killed.kill()
        killed.wait(timeout=10)
        assert fl.use(later.pid) == []
        _, users = fl.ownership()
        assert [lease.holder.pid for lease in users] == [later.pid], "the dead run's lease is not a user"
        stopped, reason = fl.release(later.pid)
        assert stopped == list(SERVICES), reason
        assert service_processes(run_dir) == {}
    finally:
        for proc in (killed, later):
            proc.kill()
            proc.wait(timeout=10)
        kill_all(run_dir)


@pytest.mark.slow
def test_two_elt_runs_at_once_leave_no_service_behind(fleet: Fleet, elt_env: EltPaths) -> None:
    """Two `python -m elt run` started together on one workspace (the second waits on the warehouse
    lock): both succeed, and when both are done no service process of their fleet is left."""
    base = free_port_base()
    env = fleet_env(elt_env.run, fleet.data_dir, base, SHOP_LOCK_WAIT="600")
    env.update(RUNTIME__DLTHUB_TELEMETRY="false", DBT_SEND_ANONYMOUS_USAGE_STATS="false")
    env.update(DBT_LOG_PATH=str(elt_env.root / "logs"))
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "elt", "run"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        seen: dict[int, str] = {}
        while any(run.poll() is None for run in runs):  # every service process the runs ever had
            seen.update(service_processes(elt_env.run))
            time.sleep(0.5)
        outputs = [run.communicate(timeout=60)[0] for run in runs]
        for run, output in zip(runs, outputs, strict=True):
            assert run.returncode == 0, output[-4000:]
        assert sorted(set(seen.values())) == sorted(SERVICES), f"the runs had a fleet: {seen}"
        left = service_processes(elt_env.run)
        assert not left, f"service processes left behind: {left}"
        assert not [pid for pid in seen if alive(pid)]
        assert answering(base) == []
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
        kill_all(elt_env.run)


def test_a_run_stopped_by_sigterm_stops_the_fleet_it_started(fleet: Fleet, elt_env: EltPaths) -> None:
    """`python -m elt run` starts its fleet and gets SIGTERM once its loader runs: it exits 143 with one
    line, and neither the loader nor any service of the fleet it started is left running."""
    base = free_port_base()
    env = fleet_env(elt_env.run, fleet.data_dir, base, RUNTIME__DLTHUB_TELEMETRY="false")
    proc = subprocess.Popen(
        [sys.executable, "-m", "elt", "run"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "INFO elt.flow: extract:" in line:
                assert service_processes(elt_env.run), "the run started no fleet"
                time.sleep(1.0)
                proc.send_signal(signal.SIGTERM)
                break
        output = "".join(lines) + proc.communicate(timeout=120)[0]
        assert proc.returncode == 143, output[-4000:]
        assert "Traceback" not in output, output[-4000:]
        assert "elt run stopped by SIGTERM at step 'extract'" in output, output[-3000:]
        left = service_processes(elt_env.run)
        assert not left, f"the fleet the run started is still running: {left}"
        assert answering(base) == []
        assert not loader_processes(elt_env.run), "the loader outlived the run"
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_all(elt_env.run)
