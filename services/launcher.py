"""Start, stop and inspect the fleet of five services, from the CLI or from Python (tests, benchmark).

One `Fleet.start()` generates the data when the data folder lacks it, writes (or reuses) `fleet.env` with
random credentials, spawns each service as its own uvicorn process with those credentials in its
environment, and waits for every health check. Processes outlive the launcher (own session).

Who owns the fleet decides who stops it (records in services/fleet_records.py): a user start
(`python -m services start`, `Fleet.start()`) keeps it up until `stop`; a run (`python -m services use
--holder PID`, what `python -m elt run` calls) leases it, and `release` stops a fleet a run started once
no live run uses it. `stop` and `status` find each service by the pid file and the owner record and by
the processes' own identity (the app in the command line, this run folder in the environment), then
probe the port; so a lost or overwritten pid file never hides a running service.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil
import requests

from services.common import private, tls
from services.common.settings import REPO_ROOT, read_env_file
from services.fleet_records import (
    RUN,
    USER,
    FleetError,
    FleetRecords,
    Holder,
    Lease,
    OwnerRecord,
    ServiceRecord,
)

log = logging.getLogger("services.launcher")

SERVICES: tuple[str, ...] = ("customers", "catalog", "orders", "payments", "events")
PORT_OFFSET = {name: i + 1 for i, name in enumerate(SERVICES)}
SECRET_KEYS: dict[str, tuple[str, ...]] = {
    "customers": ("API_KEY",),
    "catalog": ("TOKEN",),
    "orders": ("CLIENT_ID", "CLIENT_SECRET"),
    "payments": ("API_KEY",),
    "events": ("TOKEN",),
}
DEFAULT_PORT_BASE = 8100
DEFAULT_LOCK_WAIT = 900.0  # a first start generates data under the fleet lock; others wait for it
__all__ = ["SERVICES", "AdminClient", "Fleet", "FleetError", "ForeignFleet", "ServiceStatus"]


def _resolve(path: str | Path) -> Path:
    p = Path(path)
    return (p if p.is_absolute() else REPO_ROOT / p).resolve()


def _env_or(value: Any, var: str, default: Any) -> Any:
    return value if value is not None else os.environ.get(var, default)


@dataclass
class ServiceStatus:
    name: str
    url: str
    pid: int | None
    running: bool
    healthy: bool
    log_file: Path

    def line(self) -> str:
        state = "up" if self.healthy else ("running, not healthy" if self.running else "down")
        pid = f"pid {self.pid}" if self.pid else "no pid"
        return f"{self.name:<10} {state:<22} {self.url:<26} {pid:<12} log {self.log_file}"


class AdminClient:
    """The admin endpoints of one service (faults and stats), authenticated with the fleet's admin token."""

    def __init__(self, base_url: str, token: str):
        self.base_url = base_url
        self._headers = {"X-Admin-Token": token}

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        resp = requests.request(
            method,
            f"{self.base_url}/admin/{path}",
            headers=self._headers,
            data=orjson.dumps(body) if body is not None else None,
            timeout=10,
            verify=tls.client_verify(),
        )
        resp.raise_for_status()
        return orjson.loads(resp.content)

    def set_faults(self, faults: dict[str, Any]) -> dict:
        """Replace the fault set (counters restart)."""
        return self._call("PUT", "faults", faults)["faults"]

    def clear_faults(self) -> dict:
        return self._call("DELETE", "faults")["faults"]

    def faults(self) -> dict:
        return self._call("GET", "faults")["faults"]

    def stats(self) -> dict:
        """Request counts by path and status since the last reset."""
        return self._call("GET", "stats")

    def reset_stats(self) -> dict:
        return self._call("POST", "stats/reset")


class Fleet:
    """The five services on ports base+1 … base+5, their data folder and their run folder."""

    def __init__(
        self,
        run_dir: str | Path | None = None,
        data_dir: str | Path | None = None,
        port_base: int | None = None,
        scale: float | None = None,
        seed: int | None = None,
        faults: dict[str, dict] | None = None,
        token_ttl: float | None = None,
        startup_timeout: float = 60.0,
        services: tuple[str, ...] = SERVICES,
        lock_wait: float | None = None,
    ):
        self.run_dir = _resolve(_env_or(run_dir, "SHOP_RUN_DIR", "run"))
        self.data_dir = _resolve(_env_or(data_dir, "SHOP_SERVICES_DATA", "data/services"))
        self.scale = float(_env_or(scale, "SHOP_SCALE", 1))
        self.seed = int(_env_or(seed, "SHOP_SEED", 42))
        self.faults = faults if faults is not None else _faults_from_env()
        self.token_ttl = token_ttl
        self.startup_timeout = startup_timeout
        self.port_base = self._pick_port_base(port_base)
        self.services = tuple(_check(name) for name in services)  # a subset runs only those (tests)
        self._procs: dict[str, subprocess.Popen] = {}
        self.records = FleetRecords(self.run_dir)  # owner record, leases, fleet lock (fleet_records.py)
        self.lock_wait = float(_env_or(lock_wait, "SHOP_FLEET_LOCK_WAIT", DEFAULT_LOCK_WAIT))
        self.tls = tls.ServerTLS.from_env()  # HTTPS only when SHOP_TLS_CERTFILE/KEYFILE are set

    # --- addresses and credentials ----------------------------------------------------------------
    @property
    def env_file(self) -> Path:
        return self.run_dir / "fleet.env"

    def _pick_port_base(self, explicit: int | None) -> int:
        """Flag, then SHOP_PORT_BASE, then the ports of the existing fleet.env, then 8100."""
        if explicit is not None:
            return int(explicit)
        if os.environ.get("SHOP_PORT_BASE"):
            return int(os.environ["SHOP_PORT_BASE"])
        url = read_env_file(self.env_file).get("SOURCES__CUSTOMERS__BASE_URL")
        if url:
            return int(url.rsplit(":", 1)[1]) - PORT_OFFSET["customers"]
        return DEFAULT_PORT_BASE

    def port(self, service: str) -> int:
        return self.port_base + PORT_OFFSET[_check(service)]

    def url(self, service: str) -> str:
        return f"{tls.scheme(self.tls)}://127.0.0.1:{self.port(service)}"

    def env(self) -> dict[str, str]:
        """The contents of fleet.env (created with fresh random credentials if absent)."""
        return self._ensure_env()

    def admin(self, service: str) -> AdminClient:
        return AdminClient(self.url(service), self.env()["SHOP_ADMIN_TOKEN"])

    def _ensure_env(self) -> dict[str, str]:
        """Reuse existing credentials (loaders keep working across restarts); fix the URLs; chmod 600."""
        current = read_env_file(self.env_file)
        wanted: dict[str, str] = {}
        for name in SERVICES:
            upper = name.upper()
            wanted[f"SOURCES__{upper}__BASE_URL"] = self.url(name)
            for key in SECRET_KEYS[name]:
                var = f"SOURCES__{upper}__{key}"
                wanted[var] = current.get(var) or secrets.token_urlsafe(24)
        wanted["SHOP_ADMIN_TOKEN"] = current.get("SHOP_ADMIN_TOKEN") or secrets.token_urlsafe(24)
        extra = {k: v for k, v in current.items() if k not in wanted}
        merged = {**wanted, **extra}
        if merged != current or (self.env_file.stat().st_mode & 0o777) != 0o600:
            self._write_env(merged)
        return merged

    def _write_env(self, values: dict[str, str]) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.env_file.with_suffix(".env.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("# written by `python -m services start`; secrets for this fleet only, never commit\n")
            fh.writelines(f"{k}={v}\n" for k, v in values.items())
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.env_file)
        log.info("credentials in %s (mode 600)", self.env_file)

    def service_env(self, service: str) -> dict[str, str]:
        """The environment one service process starts with: its own secrets only, plus paths and faults."""
        fleet = self._ensure_env()
        upper = service.upper()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "SHOP_FAULTS"))}
        env.update(
            {
                "SHOP_SERVICES_DATA": str(self.data_dir),
                "SHOP_RUN_DIR": str(self.run_dir),
                "SHOP_ADMIN_TOKEN": fleet["SHOP_ADMIN_TOKEN"],
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            }
        )
        for key in SECRET_KEYS[service]:
            env[f"SHOP_{upper}_{key}"] = fleet[f"SOURCES__{upper}__{key}"]
        if self.token_ttl is not None:
            env[f"SHOP_{upper}_TOKEN_TTL"] = str(self.token_ttl)
        if self.faults.get(service):
            env["SHOP_FAULTS"] = orjson.dumps(self.faults[service]).decode()
        return env

    # --- data -------------------------------------------------------------------------------------
    def data_ready(self) -> bool:
        """Every service file exists and its generator finished (meta has `generated_at`)."""
        for name in SERVICES:
            path = self.data_dir / f"{name}.sqlite"
            if not path.exists():
                return False
            try:
                con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                try:
                    row = con.execute("SELECT value FROM meta WHERE key = 'generated_at'").fetchone()
                finally:
                    con.close()
            except sqlite3.Error:
                return False
            if row is None:
                return False
        return True

    def ensure_data(self) -> None:
        private.private_dir(self.data_dir)  # personal data: owner-only, files of an older checkout too
        private.tighten(self.data_dir.glob("*.sqlite*"))
        if self.data_ready():
            log.info("reusing service data in %s", self.data_dir)
            return
        from services.generator import generate  # imported late: only a first start needs it

        started = time.monotonic()
        log.info("generating service data (scale %s, seed %s) into %s", self.scale, self.seed, self.data_dir)
        partial = any((self.data_dir / f"{name}.sqlite").exists() for name in SERVICES)
        if partial:
            log.warning("service data in %s is incomplete (no generated_at): regenerating it", self.data_dir)
        counts = generate(self.data_dir, self.scale, self.seed, overwrite=partial)
        private.tighten(self.data_dir.glob("*.sqlite*"))  # generated in this process, whatever its umask
        took = time.monotonic() - started
        summary = ", ".join(f"{k}={v}" for k, v in counts.items())
        log.info("generated in %.1f s: %s", took, summary)

    # --- processes --------------------------------------------------------------------------------
    def pid_file(self, service: str) -> Path:
        return self.run_dir / f"{service}.pid"

    def log_file(self, service: str) -> Path:
        return self.run_dir / f"{service}.log"

    def _pid_from_file(self, service: str) -> int | None:
        try:
            return int(self.pid_file(service).read_text().strip())
        except (OSError, ValueError):
            return None

    def _is_ours(self, proc: psutil.Process, service: str) -> bool:
        """Whether ``proc`` really is this fleet's ``service``: its command line runs that app and its
        ``SHOP_RUN_DIR`` (set by ``service_env``) is this run folder. A pid that now belongs to another
        program, or the same service of another fleet (another run folder), is never ours."""
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            if f"services.{service}.app:app" not in " ".join(proc.cmdline()):
                return False
            run_dir = proc.environ().get("SHOP_RUN_DIR")
        except psutil.Error:
            return False
        return run_dir is not None and _resolve(run_dir) == self.run_dir

    def _processes(self) -> dict[str, list[psutil.Process]]:
        """This fleet's live processes per service, found by our records (pid file, owner record) and
        by the processes' own identity (command line + run folder): a pid file removed or overwritten
        by someone else does not hide a running service."""
        candidates: dict[str, dict[int, psutil.Process]] = {name: {} for name in self.services}
        owner = self.records.read_owner()
        for name in self.services:
            pids = [self._pid_from_file(name)]
            if owner is not None and name in owner.services:
                pids.append(owner.services[name].pid)
            for pid in filter(None, pids):
                with contextlib.suppress(psutil.Error):
                    candidates[name].setdefault(pid, psutil.Process(pid))
        needles = {name: f"services.{name}.app:app" for name in self.services}
        for proc in psutil.process_iter(["cmdline"]):
            command = " ".join(proc.info.get("cmdline") or ())
            for name, needle in needles.items():
                if needle in command:
                    candidates[name].setdefault(proc.pid, proc)
        return {
            name: [p for p in procs.values() if self._is_ours(p, name)] for name, procs in candidates.items()
        }

    def _pid(self, service: str, found: dict[str, list[psutil.Process]] | None = None) -> int | None:
        """The pid of our running service process (the pid file's when it is one), or None; a pid file
        that names no process of ours is removed."""
        procs = (found if found is not None else self._processes())[service]
        file_pid = self._pid_from_file(service)
        if file_pid is not None and file_pid in {p.pid for p in procs}:
            return file_pid
        if file_pid is not None:
            self.pid_file(service).unlink(missing_ok=True)
        return procs[0].pid if procs else None

    def healthy(self, service: str, timeout: float = 1.0) -> bool:
        try:
            resp = requests.get(f"{self.url(service)}/health", timeout=timeout, verify=tls.client_verify())
            return resp.status_code == 200 and resp.json().get("service") == service
        except (requests.RequestException, ValueError):
            return False

    def status(self) -> dict[str, ServiceStatus]:
        found = self._processes()
        out = {}
        for name in self.services:
            pid = self._pid(name, found)
            out[name] = ServiceStatus(
                name, self.url(name), pid, pid is not None, self.healthy(name), self.log_file(name)
            )
        return out

    def ownership(self) -> tuple[OwnerRecord | None, list[Lease]]:
        """The owner record and the runs using the fleet now (stale leases are dropped)."""
        return self.records.read_owner(), self.records.live_leases()

    # --- start, use, release, stop ----------------------------------------------------------------
    def start(self) -> dict[str, ServiceStatus]:
        """Start every service not already up, as the user's fleet (kept until ``stop``); harmless on a
        running fleet, and a fleet a run started becomes the user's. Raises FleetError on failure,
        after stopping whatever this start spawned."""
        holder = Holder.me()
        with self.records.locked("start the fleet", self.lock_wait):
            self._bring_up(holder, USER)
        return self.status()

    def use(self, holder_pid: int) -> list[str]:
        """Start what is down for the run ``holder_pid`` and record its lease; returns what it started.

        A fleet nobody runs becomes the run's (stopped by the last run that releases it); a service
        restarted in a running fleet joins that fleet and its owner."""
        holder = Holder.of(holder_pid)
        with self.records.locked(f"start the fleet for pid {holder_pid}", self.lock_wait):
            started = self._bring_up(holder, RUN)
            earlier = self.records.read_lease(holder_pid)
            if earlier is not None and earlier.holder.alive():
                started = [*earlier.started, *(n for n in started if n not in earlier.started)]
            self.records.write_lease(Lease(holder, started))
        return started

    def release(self, holder_pid: int, undo: bool = False) -> tuple[list[str], str]:
        """End the run ``holder_pid``'s use; returns (services stopped, what was kept and why).

        Nothing is stopped while another live run uses the fleet. Else a fleet a run started is stopped
        whole; the user's fleet is left alone, except with ``undo`` (the run's services step failed),
        which stops the services this run spawned in it, so the fleet is as the user left it."""
        with self.records.locked(f"release the fleet for pid {holder_pid}", self.lock_wait):
            lease = self.records.drop_lease(holder_pid)
            others = self.records.live_leases()
            owner = self.records.read_owner()
            if others:
                users = "; ".join(f"pid {other.holder.pid} (`{other.holder.command}`)" for other in others)
                return [], f"still used by {users}"
            if owner is not None and owner.kind == RUN:
                stopped = self._stop_locked(list(self.services), 10.0)
                return stopped, "a run started it and no other run uses it"
            mine: list[str] = []
            if undo and owner is not None:  # what the owner record says this run spawned (even if its
                # `use` was killed before it could write the lease)
                mine = [n for n, rec in owner.services.items() if rec.started_by == holder_pid]
            elif undo and lease is not None:
                mine = lease.started
            if mine:
                return self._stop_locked(mine, 10.0), "undone: the run's services step failed"
            if owner is None:
                return [], "no owner record: not started by a run"
            return [], "the user's fleet, kept until `python -m services stop`"

    def stop(self, timeout: float = 10.0) -> list[str]:
        """Stop every service of this fleet, whoever started or uses it (SIGTERM at once, SIGKILL what
        is left after ``timeout``); returns the names stopped."""
        with self.records.locked("stop the fleet", self.lock_wait):
            users = self.records.live_leases()
            if users:
                log.warning(
                    "stopping the fleet although it is in use by %s",
                    "; ".join(lease.holder.describe() for lease in users),
                )
            return self._stop_locked(list(self.services), timeout)

    def _bring_up(self, holder: Holder, kind: str) -> list[str]:
        """Start what is down (under the fleet lock); returns the services spawned."""
        private.private_dir(self.run_dir)  # credentials, pids, logs: owner-only
        found = self._processes()
        running = {name for name in self.services if found[name] and self.healthy(name)}
        if len(running) == len(self.services):
            self._record_owner(holder, kind, found)
            log.info(
                "fleet already up on ports %d-%d", self.port(self.services[0]), self.port(self.services[-1])
            )
            return []
        # A port that answers /health without a process of ours belongs to another fleet (another run
        # dir): reporting it as "up" would point the loaders at services holding other credentials.
        foreign = [name for name in self.services if name not in running and self.healthy(name)]
        if foreign:
            raise ForeignFleet(
                "port(s) already serve another fleet, not the one in "
                f"{self.run_dir}: {', '.join(f'{n} on {self.url(n)}' for n in foreign)}; "
                "stop that fleet or choose another --port-base"
            )
        hung = [name for name in self.services if name not in running and found[name]]
        if hung:
            log.warning("%s running but not answering /health: restarting", ", ".join(hung))
            self._stop_locked(hung, timeout=5)
            found = self._processes()
        self.ensure_data()
        self._ensure_env()
        owner = self._record_owner(holder, kind, found)
        spawned: list[str] = []
        try:
            for name in self.services:
                if name in running:
                    log.info("%s already up on %s", name, self.url(name))
                    continue
                spawned.append(name)
                self._spawn(name, holder, owner)
            for name in spawned:
                self._wait_healthy(name)
        except BaseException:  # a failure, Ctrl-C or SIGTERM: nothing this start spawned outlives it
            self._stop_locked(spawned, timeout=5)
            raise
        private.tighten([self.run_dir])  # pid, log and owner files made in this process, whatever its umask
        return spawned

    def _record_owner(self, holder: Holder, kind: str, found: dict[str, list[psutil.Process]]) -> OwnerRecord:
        """The owner record, written: a new one when no service of ours runs; else the existing one with
        the running processes, made the user's on a user start."""
        owner = self.records.read_owner()
        anything_running = any(found.values())
        if owner is None or not anything_running:
            owner = OwnerRecord(
                owner=holder,
                kind=kind,
                started_at=holder.since,
                port_base=self.port_base,
                ports={name: self.port(name) for name in self.services},
                data_dir=str(self.data_dir),
                run_dir=str(self.run_dir),
            )
            if anything_running:  # started by an older launcher or its record was deleted: not a run's
                owner.kind, owner.adopted_by = USER, "found running without an owner record"
        elif kind == USER and owner.kind == RUN:
            owner.kind, owner.adopted_by = USER, holder.describe()
            log.info("the fleet a run started is now kept until `python -m services stop`")
        for name in self.services:
            procs = found[name]
            known = owner.services.get(name)
            if not procs:
                owner.services.pop(name, None)
            elif known is None or known.pid not in {p.pid for p in procs}:
                with contextlib.suppress(psutil.Error):
                    owner.services[name] = ServiceRecord(
                        procs[0].pid, procs[0].create_time(), self.port(name), 0
                    )
            if procs and self._pid_from_file(name) not in {p.pid for p in procs}:
                self.pid_file(name).write_text(f"{procs[0].pid}\n")  # a lost pid file comes back
        self.records.write_owner(owner)
        return owner

    def _spawn(self, service: str, holder: Holder, owner: OwnerRecord) -> None:
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            f"services.{service}.app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port(service)),
            "--http",
            "httptools",
            "--loop",
            "uvloop",
            "--no-access-log",
            "--log-level",
            "warning",
            "--timeout-graceful-shutdown",
            "3",
            *(self.tls.uvicorn_args() if self.tls else []),
        ]
        try:
            with self.log_file(service).open("ab") as log_fh:
                log_fh.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {service} ---\n".encode())
                log_fh.flush()
                # Popen returns once the child has exec'd uvicorn: from then on its command line and
                # environment identify it as this fleet's service (see _is_ours).
                proc = subprocess.Popen(
                    cmd,
                    cwd=REPO_ROOT,
                    env=self.service_env(service),
                    stdin=subprocess.DEVNULL,
                    stdout=log_fh,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # survives the launcher and its terminal's Ctrl-C
                    umask=private.OWNER_ONLY_UMASK,  # the SQLite WAL and -shm files it creates
                )
        except OSError as exc:
            raise FleetError(
                f"cannot start {service}: {exc.strerror or exc} ({self.log_file(service)}); "
                f"check that {self.run_dir} is a writable folder"
            ) from exc
        self._procs[service] = proc
        create_time = psutil.Process(proc.pid).create_time()
        owner.services[service] = ServiceRecord(proc.pid, create_time, self.port(service), holder.pid)
        self.records.write_owner(owner)
        self.pid_file(service).write_text(f"{proc.pid}\n")

    def _wait_healthy(self, service: str) -> None:
        proc = self._procs[service]
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise FleetError(
                    f"{service} exited with code {proc.returncode} during start-up; "
                    f"see {self.log_file(service)}:\n{_tail(self.log_file(service))}"
                )
            if self.healthy(service, timeout=0.5):
                log.info(
                    "%s up on %s (pid %d, log %s)",
                    service,
                    self.url(service),
                    proc.pid,
                    self.log_file(service),
                )
                return
            time.sleep(0.1)
        raise FleetError(
            f"{service} did not answer {self.url(service)}/health within {self.startup_timeout:.0f} s; "
            f"see {self.log_file(service)}:\n{_tail(self.log_file(service))}"
        )

    def _stop_locked(self, services: list[str], timeout: float) -> list[str]:
        """Stop ``services`` (under the fleet lock): every process of ours found for each, then their
        records; returns the names that had a process. The port probe afterwards names a port that
        still answers (a process of another fleet or another user, which is not ours to signal)."""
        found = self._processes()
        targets = [(name, proc) for name in services for proc in found[name]]
        for _, proc in targets:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs([proc for _, proc in targets], timeout=timeout)
        for name, proc in targets:
            if proc in alive:
                log.warning("%s (pid %d) ignored SIGTERM for %.0f s: killing", name, proc.pid, timeout)
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
        psutil.wait_procs(alive, timeout=5)
        for name in services:
            child = self._procs.pop(name, None)
            if child is not None:
                child.poll()  # reap our own child so it does not linger as a zombie
            self.pid_file(name).unlink(missing_ok=True)
        for name, proc in targets:
            log.info("%s stopped (pid %d)", name, proc.pid)
        owner = self.records.read_owner()
        if owner is not None:
            for name in services:
                owner.services.pop(name, None)
            if owner.services or any(self._processes().values()):
                self.records.write_owner(owner)
            else:  # the fleet is gone, and so is its owner (the leases of live runs stay: they still use it)
                self.records.remove_owner()
        for name in services:
            if self.healthy(name, timeout=0.5):
                log.warning(
                    "%s: %s still answers /health, but no process of the fleet in %s serves it "
                    "(another fleet's?): not stopped",
                    name,
                    self.url(name),
                    self.run_dir,
                )
        return list(dict.fromkeys(name for name, _ in targets))

    def __enter__(self) -> Fleet:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class ForeignFleet(FleetError):
    """The ports answer as a fleet that is not this run folder's."""


def _check(service: str) -> str:
    if service not in PORT_OFFSET:
        raise ValueError(f"unknown service {service!r}; expected one of {', '.join(SERVICES)}")
    return service


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log file)"


def _faults_from_env() -> dict[str, dict]:
    """`SHOP_FAULTS` for the launcher: {"service": {...}} per service, or one fault set for all five."""
    raw = os.environ.get("SHOP_FAULTS", "").strip()
    if not raw:
        return {}
    value = orjson.loads(raw)
    if not isinstance(value, dict):
        raise FleetError("SHOP_FAULTS must be a JSON object")
    if value and set(value) <= set(SERVICES):
        return value
    return dict.fromkeys(SERVICES, value)
