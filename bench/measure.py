"""Run one measured command as its own process under bench.wrap and collect the numbers.

Why a separate process per run: CPU and peak memory must belong to the measured command alone, not to
the harness or the fleet it keeps alive. Load average and a short CPU-busy sample are taken just before
each run so noisy runs (something else was busy) can be marked in the report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

NOISY_BUSY_PERCENT = 30.0  # system CPU busy in the 0.5 s before a run above this marks it noisy


@dataclass
class Measurement:
    """One measured run of one subject."""

    subject: str
    repeat: int
    returncode: int
    wall_s: float
    cpu_s: float
    maxrss_mb: float
    tree_rss_peak_mb: float
    load1_before: float
    busy_before_pct: float
    noisy: bool
    ok: bool = False
    rows: int = 0
    check: str = ""
    stderr_tail: list[str] = field(default_factory=list)
    stdout_path: str = ""
    services_cpu_s: float = 0.0  # CPU the fleet's service processes spent during the run

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["rows_per_s"] = round(self.rows_per_s, 1)
        return d


def services_cpu(pids: list[int]) -> float:
    """user+sys seconds so far of the given service processes (gone ones count as 0)."""
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def run_measured(
    subject: str,
    repeat: int,
    cmd: list[str],
    env: dict[str, str],
    out_dir: Path,
    cwd: Path,
    timeout: float,
    server_pids: list[int] | None = None,
) -> Measurement:
    """Run `cmd` under the wrapper; stdout goes to a file (peers print their summary there)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{subject.replace(' ', '_').replace('/', '_')}.r{repeat}"
    metrics = out_dir / f"{stem}.json"
    stdout = out_dir / f"{stem}.stdout"
    stderr = out_dir / f"{stem}.stderr"
    load1 = os.getloadavg()[0]
    busy = psutil.cpu_percent(interval=0.5)
    wrapper = [sys.executable, "-m", "bench.wrap", "--out", str(metrics), "--stdout", str(stdout), "--", *cmd]
    server_before = services_cpu(server_pids or [])
    started = time.perf_counter()
    with open(stderr, "wb") as err:
        try:
            rc = subprocess.run(
                wrapper, env=env, cwd=cwd, stderr=err, timeout=timeout, check=False
            ).returncode
        except subprocess.TimeoutExpired:
            rc = -9
    server_cpu = services_cpu(server_pids or []) - server_before
    tail = stderr.read_text(errors="replace").splitlines()[-15:]
    if metrics.exists():
        m = json.loads(metrics.read_text())
    else:  # the wrapper itself died or timed out: keep the wall time we saw
        m = {
            "returncode": rc,
            "wall_s": time.perf_counter() - started,
            "cpu_s": 0,
            "maxrss_mb": 0,
            "tree_rss_peak_mb": 0,
        }
    return Measurement(
        subject=subject,
        repeat=repeat,
        returncode=m["returncode"],
        wall_s=m["wall_s"],
        cpu_s=m["cpu_s"],
        maxrss_mb=m["maxrss_mb"],
        tree_rss_peak_mb=m["tree_rss_peak_mb"],
        load1_before=round(load1, 2),
        busy_before_pct=busy,
        noisy=busy > NOISY_BUSY_PERCENT,
        stderr_tail=tail,
        stdout_path=str(stdout),
        services_cpu_s=round(server_cpu, 2),
    )
