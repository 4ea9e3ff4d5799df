"""Start and stop a private service fleet for the benchmark (own ports, run and data dirs in bench/work/).

Why private: other people run fleets on the default ports and folders at the same time; the benchmark
must neither disturb them nor measure against data it did not generate at a known scale and seed.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def free_port_base(span: int = 6, tries: int = 50) -> int:
    """A random port base whose base+1 … base+span are all free on 127.0.0.1 right now."""
    for _ in range(tries):
        base = random.randrange(20000, 60000, 10)
        if all(_port_free(base + i) for i in range(1, span + 1)):
            return base
    raise RuntimeError("no free port range found on 127.0.0.1")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class BenchFleet:
    """A running fleet and the environment every measured command gets."""

    scale: float
    seed: int
    run_dir: Path
    data_dir: Path
    port_base: int
    handle: Any
    env: dict[str, str]
    start_s: float

    def pids(self) -> list[int]:
        """The service processes (for their CPU use during a measured run)."""
        try:
            return [s.pid for s in self.handle.status().values() if s.pid]
        except Exception:  # status is informative only; never fail a benchmark over it
            return []


def fleet_unavailable() -> str | None:
    """Why the fleet cannot be started, or None when services.launcher.Fleet is importable."""
    try:
        from services.launcher import Fleet  # noqa: F401
    except Exception as exc:  # any import failure means "not there yet" for the report
        return f"services.launcher.Fleet not importable ({type(exc).__name__}: {exc})"
    return None


@contextmanager
def running_fleet(work: Path, scale: float, seed: int, fresh: bool = True) -> Iterator[BenchFleet]:
    """Generate (if needed) and start a fleet at `scale`; stop it on exit."""
    from services.launcher import Fleet

    tag = f"scale-{scale:g}-seed-{seed}"
    run_dir = work / "run" / tag
    data_dir = work / "data" / tag
    if fresh and data_dir.exists():
        shutil.rmtree(data_dir)  # the incremental scenario mutates data; start each fleet from the seed
    run_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    port_base = free_port_base()
    fleet = Fleet(
        run_dir=run_dir, data_dir=data_dir, port_base=port_base, scale=scale, seed=seed, faults=None
    )
    started = time.perf_counter()
    fleet.start()
    try:
        env = dict(os.environ)
        env.update({k: str(v) for k, v in fleet.env().items()})
        env.update(
            {
                "SHOP_RUN_DIR": str(run_dir),
                "SHOP_SERVICES_DATA": str(data_dir),
                "SHOP_PORT_BASE": str(port_base),
                "SHOP_SCALE": f"{scale:g}",
                "SHOP_SEED": str(seed),
                "RUNTIME__DLTHUB_TELEMETRY": "false",
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            }
        )
        yield BenchFleet(scale, seed, run_dir, data_dir, port_base, fleet, env, time.perf_counter() - started)
    finally:
        fleet.stop()
