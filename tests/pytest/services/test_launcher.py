"""The fleet launcher: start (idempotent), status, stop, credentials in fleet.env, clear start-up errors.

Each test runs its own fleet in its own run folder on free ports, reusing the shared fleet's data
(services only read it), so nothing here touches `run/`, `data/` or the default ports.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from services.common.settings import REPO_ROOT, read_env_file
from services.launcher import SERVICES, Fleet, FleetError
from tests.pytest.support.ports import free_port_base


def cli(*args: str) -> subprocess.CompletedProcess:
    """The launcher's command line, without the caller's SHOP_PORT_BASE: it outranks fleet.env, and the
    cases below pass their ports as flags or read them from fleet.env."""
    env = {k: v for k, v in os.environ.items() if k != "SHOP_PORT_BASE"}
    return subprocess.run(
        [sys.executable, "-m", "services", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def status_lines(output: str, state: str) -> int:
    """How many per-service status lines (`<service>  <state>  <url> …`) report `state`."""
    return sum(1 for line in output.splitlines() if line.split()[:2] in ([n, state] for n in SERVICES))


def test_cli_start_status_stop(fleet: Fleet, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    base = free_port_base()
    where = ["--data-dir", str(fleet.data_dir), "--run-dir", str(run_dir)]
    try:
        started = cli("start", "--port-base", str(base), *where)
        assert started.returncode == 0, started.stderr + started.stdout
        assert status_lines(started.stdout, "up") == len(SERVICES)

        env_file = run_dir / "fleet.env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
        env = read_env_file(env_file)
        assert env["SOURCES__ORDERS__BASE_URL"] == f"http://127.0.0.1:{base + 3}"
        secrets = {k: v for k, v in env.items() if not k.endswith("BASE_URL")}
        assert set(secrets) == {
            "SOURCES__CUSTOMERS__API_KEY",
            "SOURCES__CATALOG__TOKEN",
            "SOURCES__ORDERS__CLIENT_ID",
            "SOURCES__ORDERS__CLIENT_SECRET",
            "SOURCES__PAYMENTS__API_KEY",
            "SOURCES__EVENTS__TOKEN",
            "SHOP_ADMIN_TOKEN",
        }
        assert len(set(secrets.values())) == len(secrets), "every credential is its own random value"
        for value in secrets.values():
            assert value not in started.stdout + started.stderr, "a secret was printed"
        pids = {name: (run_dir / f"{name}.pid").read_text() for name in SERVICES}

        again = cli("start", *where)  # no port flag: the ports come from fleet.env
        assert again.returncode == 0
        assert "already up" in again.stdout
        assert {name: (run_dir / f"{name}.pid").read_text() for name in SERVICES} == pids

        status = cli("status", *where)
        assert status.returncode == 0
        assert status_lines(status.stdout, "up") == len(SERVICES)

        stopped = cli("stop", *where)
        assert stopped.returncode == 0
        assert not list(run_dir.glob("*.pid"))
        for pid in pids.values():
            assert (
                not psutil.pid_exists(int(pid)) or psutil.Process(int(pid)).status() == psutil.STATUS_ZOMBIE
            )

        down = cli("status", *where)
        assert down.returncode == 1
        assert status_lines(down.stdout, "down") == len(SERVICES)

        restarted = cli("start", *where)
        assert restarted.returncode == 0
        assert read_env_file(env_file) == env, "credentials are reused across restarts"
    finally:
        cli("stop", *where)


def test_failed_service_is_named_and_the_others_are_stopped(fleet: Fleet, tmp_path: Path) -> None:
    base = free_port_base()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", base + 3))  # orders' port is taken by someone else
    blocker.listen()
    fl = Fleet(run_dir=tmp_path / "run", data_dir=fleet.data_dir, port_base=base, startup_timeout=20)
    try:
        with pytest.raises(FleetError) as info:
            fl.start()
        message = str(info.value)
        assert "orders" in message
        assert str(tmp_path / "run" / "orders.log") in message
        assert not list((tmp_path / "run").glob("*.pid")), "the services that did start were stopped"
        assert not any(st.running or st.healthy for st in fl.status().values())
    finally:
        blocker.close()
        fl.stop()


def test_ports_of_another_fleet_are_not_reported_as_up(fleet: Fleet, tmp_path: Path) -> None:
    """Same ports, another run dir: the second launcher must refuse, not adopt the other fleet."""
    other = Fleet(run_dir=tmp_path / "run", data_dir=fleet.data_dir, port_base=fleet.port_base)
    with pytest.raises(FleetError) as info:
        other.start()
    assert "another fleet" in str(info.value)
    assert fleet.url("customers") in str(info.value)
    assert not list((tmp_path / "run").glob("*.pid")), "nothing was spawned"
    assert all(fleet.healthy(name) for name in SERVICES), "the running fleet was left alone"


def test_stop_kills_a_service_that_ignores_sigterm(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fl = Fleet(run_dir=tmp_path / "run", data_dir=tmp_path / "data", port_base=free_port_base())
    fl.run_dir.mkdir(parents=True)
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(120)",
            "services.customers.app:app",  # looks like our service to the launcher's identity check
        ],
        env={**os.environ, "SHOP_RUN_DIR": str(fl.run_dir)},  # ... and belongs to this run folder
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert stubborn.stdout.readline().strip() == "ready"
        fl.pid_file("customers").write_text(f"{stubborn.pid}\n")
        with caplog.at_level("WARNING", logger="services.launcher"):
            assert fl.stop(timeout=1) == ["customers"]
        assert "ignored SIGTERM" in caplog.text
        stubborn.wait(timeout=10)  # (psutil already reaped it, so its exit code is not reliable here)
        assert not psutil.pid_exists(stubborn.pid)
        assert not fl.pid_file("customers").exists()
    finally:
        stubborn.kill()


def test_stale_pid_file_is_ignored_and_removed(tmp_path: Path) -> None:
    fl = Fleet(run_dir=tmp_path / "run", data_dir=tmp_path / "data", port_base=free_port_base())
    fl.run_dir.mkdir(parents=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    fl.pid_file("catalog").write_text(f"{gone.pid}\n")
    assert fl.status()["catalog"].running is False
    assert not fl.pid_file("catalog").exists()
    # a live process that is not our service is never signalled
    fl.pid_file("events").write_text(f"{psutil.Process().pid}\n")
    assert fl.stop() == []


def test_first_start_generated_the_data(fleet: Fleet) -> None:
    """The shared fleet started on an empty folder: the launcher generated it at the requested scale."""
    assert fleet.data_ready()
    for name in SERVICES:
        con = sqlite3.connect(fleet.data_dir / f"{name}.sqlite")
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        con.close()
        assert float(meta["scale"]) == fleet.scale
        assert meta["seed"] == "42"


def test_python_api_addresses(fleet: Fleet, fleet_env: dict[str, str]) -> None:
    for i, name in enumerate(SERVICES, start=1):
        assert fleet.url(name) == f"http://127.0.0.1:{fleet.port_base + i}"
        assert fleet_env[f"SOURCES__{name.upper()}__BASE_URL"] == fleet.url(name)
        assert fleet.admin(name).stats()["requests"] >= 0
    with pytest.raises(ValueError):
        fleet.url("inventory")


def test_a_fleet_can_run_a_subset(make_fleet: Callable[..., Fleet], fleet: Fleet) -> None:
    extra = make_fleet(data_dir=fleet.data_dir, services=("events",))
    assert extra.port_base != fleet.port_base
    assert set(extra.status()) == {"events"}
    assert extra.healthy("events") and not extra.healthy("customers")
    assert extra.env()["SHOP_ADMIN_TOKEN"] != fleet.env()["SHOP_ADMIN_TOKEN"]


def test_stop_finds_services_whose_pid_files_were_removed(
    make_fleet: Callable[..., Fleet], fleet: Fleet
) -> None:
    """Pid files and even the owner record gone (deleted by hand, or by another run's stop on old
    code): `stop` still finds each service by its own identity (the app in its command line, this run
    folder in its environment) and stops all five, and leaves another fleet's same services alone."""
    extra = make_fleet(data_dir=fleet.data_dir)
    pids = {name: int(extra.pid_file(name).read_text()) for name in SERVICES}
    try:
        for name in SERVICES:
            extra.pid_file(name).unlink()
        (extra.run_dir / "fleet.owner.json").unlink(missing_ok=True)  # (old launchers had none)
        assert all(st.running and st.pid == pids[st.name] for st in extra.status().values()), (
            "status finds them"
        )

        where = ["--data-dir", str(extra.data_dir), "--run-dir", str(extra.run_dir)]
        stopped = cli("stop", *where)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert f"stopped: {', '.join(SERVICES)}" in stopped.stdout
        for pid in pids.values():
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        assert not any(extra.healthy(name) for name in SERVICES), "the port probe finds nothing left"
        assert all(fleet.healthy(name) for name in SERVICES), "the shared fleet's services were not touched"
    finally:  # on failure, nothing of this case outlives it (make_fleet's stop may not see them)
        for pid in pids.values():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.environ().get("SHOP_RUN_DIR") == str(extra.run_dir):  # (not a reused pid)
                    proc.kill()
