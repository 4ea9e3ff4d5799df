"""Run one command and report its own resource use as JSON.

Why a wrapper: the harness keeps the service fleet as its own children, so its RUSAGE_CHILDREN
numbers would mix the fleet in. Each measured command instead runs under this tiny process, which
waits for exactly that command (and whatever it spawns and reaps) and writes wall time, user+sys CPU
and peak memory to a JSON file. Peak memory comes in two flavours: the kernel's ru_maxrss (largest
single process in the tree, exact) and a sampled sum of RSS over the live process tree (catches
multi-process commands such as dbt threads or a tap piped into a target).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil


def _sample_tree_rss(pid: int, stop: threading.Event, peak: list[int], interval: float) -> None:
    """Sum RSS over `pid` and its descendants until `stop` is set; keep the maximum in peak[0]."""
    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return
    while not stop.is_set():
        total = 0
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        peak[0] = max(peak[0], total)
        stop.wait(interval)


def run(cmd: list[str], out: Path, stdout_path: Path | None, interval: float) -> int:
    """Run `cmd`, write its measurements to `out`, return its exit code."""
    stdout_f = open(stdout_path, "wb") if stdout_path else None  # noqa: SIM115 - closed below
    try:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout_f or None)
        stop = threading.Event()
        peak = [0]
        sampler = threading.Thread(
            target=_sample_tree_rss, args=(proc.pid, stop, peak, interval), daemon=True
        )
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        stop.set()
        sampler.join(timeout=2)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if stdout_f:
            stdout_f.close()
    # Descendants that the child reaped are folded into `usage` by the kernel; RUSAGE_CHILDREN of this
    # wrapper covers the same tree and gives the largest single RSS seen anywhere in it.
    tree = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "cmd": cmd,
        "returncode": proc.returncode,
        "wall_s": round(wall, 4),
        "user_s": round(usage.ru_utime, 4),
        "sys_s": round(usage.ru_stime, 4),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 4),
        "maxrss_mb": round(max(usage.ru_maxrss, tree.ru_maxrss) / 1024, 1),
        "tree_rss_peak_mb": round(peak[0] / 1024 / 1024, 1),
    }
    out.write_text(json.dumps(result))
    return proc.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="measure one command (used by the bench harness)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON measurements")
    parser.add_argument("--stdout", type=Path, default=None, help="capture the command's stdout here")
    parser.add_argument("--interval", type=float, default=0.05, help="RSS sampling interval in seconds")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command …")
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    if not cmd:
        parser.error("no command given")
    return run(cmd, args.out, args.stdout, args.interval)


if __name__ == "__main__":
    sys.exit(main())
