"""Start, stop and inspect the fleet of five services, from the CLI or from Python (tests, benchmark).

One `Fleet.start()` generates the data when the data folder lacks it, writes (or reuses) `fleet.env` with
random credentials, spawns each service as its own uvicorn process with those credentials in its
environment, and waits for every health check. Processes outlive the launcher (own session); pid and log
files in the run folder are how `stop` and `status` find them again.
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

from services.common import tls
from services.common.settings import REPO_ROOT, read_env_file

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


class FleetError(RuntimeError):
    """A service failed to start or stop; the message names it and its log file."""


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
        took = time.monotonic() - started
        summary = ", ".join(f"{k}={v}" for k, v in counts.items())
        log.info("generated in %.1f s: %s", took, summary)

    # --- processes --------------------------------------------------------------------------------
    def pid_file(self, service: str) -> Path:
        return self.run_dir / f"{service}.pid"

    def log_file(self, service: str) -> Path:
        return self.run_dir / f"{service}.log"

    def _pid(self, service: str) -> int | None:
        """The pid of our running service process, or None (a stale pid file is removed)."""
        path = self.pid_file(service)
        try:
            pid = int(path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            proc = psutil.Process(pid)
            alive = proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
            ours = alive and f"services.{service}.app:app" in " ".join(proc.cmdline())
        except psutil.Error:
            ours = False
        if not ours:
            path.unlink(missing_ok=True)
            return None
        return pid

    def healthy(self, service: str, timeout: float = 1.0) -> bool:
        try:
            resp = requests.get(f"{self.url(service)}/health", timeout=timeout, verify=tls.client_verify())
            return resp.status_code == 200 and resp.json().get("service") == service
        except (requests.RequestException, ValueError):
            return False

    def status(self) -> dict[str, ServiceStatus]:
        out = {}
        for name in self.services:
            pid = self._pid(name)
            out[name] = ServiceStatus(
                name, self.url(name), pid, pid is not None, self.healthy(name), self.log_file(name)
            )
        return out

    def start(self) -> dict[str, ServiceStatus]:
        """Start every service not already up; harmless on a running fleet. Raises FleetError on failure."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        running = {name for name in self.services if self._pid(name) is not None and self.healthy(name)}
        if len(running) == len(self.services):
            log.info(
                "fleet already up on ports %d-%d", self.port(self.services[0]), self.port(self.services[-1])
            )
            return self.status()
        # A port that answers /health without a pid file of ours belongs to another fleet (another run
        # dir): reporting it as "up" would point the loaders at services holding other credentials.
        foreign = [name for name in self.services if name not in running and self.healthy(name)]
        if foreign:
            raise FleetError(
                "port(s) already serve another fleet, not the one in "
                f"{self.run_dir}: {', '.join(f'{n} on {self.url(n)}' for n in foreign)}; "
                "stop that fleet or choose another --port-base"
            )
        self.ensure_data()
        self._ensure_env()
        started: list[str] = []
        for name in self.services:
            if name in running:
                log.info("%s already up on %s", name, self.url(name))
                continue
            self._spawn(name)
            started.append(name)
        try:
            for name in started:
                self._wait_healthy(name)
        except FleetError:
            self._stop_many(started, timeout=5)
            raise
        return self.status()

    def _spawn(self, service: str) -> None:
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
        with self.log_file(service).open("ab") as log_fh:
            log_fh.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {service} ---\n".encode())
            log_fh.flush()
            proc = subprocess.Popen(
                cmd,
                cwd=REPO_ROOT,
                env=self.service_env(service),
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the launcher and its terminal's Ctrl-C
            )
        self._procs[service] = proc
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

    def stop(self, timeout: float = 10.0) -> list[str]:
        """SIGTERM every service at once, SIGKILL what is left after `timeout`; returns the names stopped."""
        return self._stop_many(list(self.services), timeout)

    def _stop_many(self, services: list[str], timeout: float) -> list[str]:
        targets: dict[str, psutil.Process] = {}
        for name in services:
            pid = self._pid(name)
            if pid is None:
                self.pid_file(name).unlink(missing_ok=True)
                continue
            try:
                proc = psutil.Process(pid)
                proc.send_signal(signal.SIGTERM)
                targets[name] = proc
            except psutil.NoSuchProcess:
                self.pid_file(name).unlink(missing_ok=True)
        _, alive = psutil.wait_procs(list(targets.values()), timeout=timeout)
        for proc in alive:
            name = next(n for n, p in targets.items() if p is proc)
            log.warning("%s (pid %d) ignored SIGTERM for %.0f s: killing", name, proc.pid, timeout)
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)
        for name in services:
            child = self._procs.pop(name, None)
            if child is not None:
                child.poll()  # reap our own child so it does not linger as a zombie
        for name, proc in targets.items():
            self.pid_file(name).unlink(missing_ok=True)
            log.info("%s stopped (pid %d)", name, proc.pid)
        return list(targets)

    def __enter__(self) -> Fleet:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


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
