"""Who owns a fleet and who is using it: the owner record, the usage leases and the fleet lock.

Why records of our own: pid files alone cannot say whether a fleet was started by the user (keep it up
until `services stop`) or by a flow run (stop it once that run, and every other run using it, is done),
and two runs that start the same fleet at once overwrote each other's pid files, so the first one's
stop removed the second one's records and left its processes running unseen. Everything here lives in
the run folder, owner-only:

- ``fleet.lock``: an exclusive ``flock`` held by whoever starts, uses, releases or stops the fleet, so
  those changes happen one at a time; the kernel drops it when its holder dies (never stale).
- ``fleet.owner.json``: one owner record per fleet: who started it (pid, command, process start time),
  as ``user`` (``python -m services start``, the Python API) or ``run`` (``python -m services use``),
  when, its ports, data and run folders, and per service the pid, the process's start time and who
  spawned it.
- ``leases/<pid>.json``: one usage record per run using the fleet. A lease whose process is gone (or
  whose pid now belongs to a newer process) is stale: ignored and removed.

This module imports nothing of the pipeline (``elt``, ``extract``): the services stand alone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shlex
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

OWNER_FILE = "fleet.owner.json"
LOCK_FILE = "fleet.lock"
LEASES_DIR = "leases"
USER = "user"  # kept until `python -m services stop`
RUN = "run"  # stopped when the last run using it releases it
# psutil rounds process start times differently across calls; a recycled pid starts seconds later.
_START_TIME_SLACK = 0.5


class FleetError(RuntimeError):
    """A service failed to start or stop, or the fleet is busy; the message says which and what to do."""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


@dataclass
class Holder:
    """A process that starts or uses the fleet, identified by pid *and* start time (pids are reused)."""

    pid: int
    create_time: float
    command: str
    since: str = field(default_factory=_now)

    @classmethod
    def of(cls, pid: int) -> Holder:
        """The running process ``pid``; FleetError if there is none (a lease for nobody is refused)."""
        try:
            proc = psutil.Process(pid)
            return cls(pid, proc.create_time(), shlex.join(proc.cmdline()))
        except psutil.Error as exc:
            raise FleetError(f"no running process with pid {pid} to hold the fleet for") from exc

    @classmethod
    def me(cls) -> Holder:
        return cls.of(os.getpid())

    def alive(self) -> bool:
        """The same process is still running (not a zombie, not a newer process under a reused pid)."""
        return process_alive(self.pid, self.create_time)

    def describe(self) -> str:
        return f"pid {self.pid} (`{self.command}`, since {self.since})"


def process_alive(pid: int | None, create_time: float | None) -> bool:
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) < _START_TIME_SLACK
    except psutil.Error:
        return False


@dataclass
class ServiceRecord:
    """One spawned service process and the holder that spawned it."""

    pid: int
    create_time: float
    port: int
    started_by: int
    started_at: str = field(default_factory=_now)


@dataclass
class OwnerRecord:
    """The fleet's owner record (``fleet.owner.json``)."""

    owner: Holder
    kind: str  # USER or RUN
    started_at: str
    port_base: int
    ports: dict[str, int]
    data_dir: str
    run_dir: str
    services: dict[str, ServiceRecord] = field(default_factory=dict)
    adopted_by: str | None = None  # a user start that made a run's fleet the user's

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> OwnerRecord:
        services = {k: ServiceRecord(**v) for k, v in raw.pop("services", {}).items()}
        owner = Holder(**raw.pop("owner"))
        return cls(owner=owner, services=services, **raw)

    def describe(self) -> str:
        how = (
            "kept until `python -m services stop`"
            if self.kind == USER
            else "stopped by the last run using it"
        )
        adopted = f"; the user's since {self.adopted_by}" if self.adopted_by else ""
        return f"{self.kind}'s fleet, started by {self.owner.describe()}{adopted}; {how}"


@dataclass
class Lease:
    """One run's use of the fleet, and the services that run spawned (``leases/<pid>.json``)."""

    holder: Holder
    started: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Lease:
        return cls(Holder(**raw["holder"]), list(raw.get("started", [])))


def _write_private(path: Path, payload: bytes) -> None:
    """Atomic owner-only write: a reader sees the old or the new record, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(payload)
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = orjson.loads(path.read_bytes())
    except (FileNotFoundError, orjson.JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


class FleetRecords:
    """The records of the fleet in one run folder."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.owner_file = run_dir / OWNER_FILE
        self.lock_file = run_dir / LOCK_FILE
        self.leases_dir = run_dir / LEASES_DIR

    # --- the lock ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self, purpose: str, wait: float) -> Iterator[None]:
        """Hold ``fleet.lock`` for ``purpose``, waiting at most ``wait`` seconds for the current holder."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + wait
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                if time.monotonic() >= deadline:
                    holder = self.lock_file.read_text(errors="replace").strip() or "another process"
                    raise FleetError(
                        f"the fleet in {self.run_dir} is busy for {wait:.0f} s ({holder}); "
                        "wait for it to finish, or stop that process"
                    )
                time.sleep(0.1)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"held by pid {os.getpid()} to {purpose} since {_now()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    # --- the owner record -------------------------------------------------------------------------
    def read_owner(self) -> OwnerRecord | None:
        raw = _read_json(self.owner_file)
        if raw is None:
            return None
        try:
            return OwnerRecord.from_json(raw)
        except (TypeError, KeyError):
            return None  # a damaged record: the processes' own identity still finds the services

    def write_owner(self, record: OwnerRecord) -> None:
        _write_private(self.owner_file, orjson.dumps(asdict(record), option=orjson.OPT_INDENT_2))

    def remove_owner(self) -> None:
        self.owner_file.unlink(missing_ok=True)

    # --- leases -----------------------------------------------------------------------------------
    def lease_file(self, pid: int) -> Path:
        return self.leases_dir / f"{pid}.json"

    def write_lease(self, lease: Lease) -> None:
        self.leases_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_private(self.lease_file(lease.holder.pid), orjson.dumps(asdict(lease)))

    def read_lease(self, pid: int) -> Lease | None:
        raw = _read_json(self.lease_file(pid))
        try:
            return Lease.from_json(raw) if raw is not None else None
        except (TypeError, KeyError):
            return None

    def drop_lease(self, pid: int) -> Lease | None:
        lease = self.read_lease(pid)
        self.lease_file(pid).unlink(missing_ok=True)
        return lease

    def live_leases(self) -> list[Lease]:
        """Leases whose run is still running; stale ones (process gone or pid reused) are removed."""
        live = []
        for path in sorted(self.leases_dir.glob("*.json")) if self.leases_dir.is_dir() else []:
            raw = _read_json(path)
            try:
                lease = Lease.from_json(raw) if raw is not None else None
            except (TypeError, KeyError):
                lease = None
            if lease is not None and lease.holder.alive():
                live.append(lease)
            else:
                path.unlink(missing_ok=True)
        return live

    def drop_all_leases(self) -> None:
        if self.leases_dir.is_dir():
            for path in self.leases_dir.glob("*.json"):
                path.unlink(missing_ok=True)
