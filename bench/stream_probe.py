"""Drive `python -m elt stream` for the benchmark: produce events at a steady rate, stop, report latency.

Why a driver process: the stream is a long-running follower, not a command that ends, so the measured
unit is "follow N seconds of traffic": start the stream, let the simulator emit events at `--rate` for
`--duration` seconds, wait until the stream has committed the last event, stop it with SIGTERM (it
finishes the batch in flight), and print the stream's own latency statistics (event `occurred_at` →
visible in the published real-time marts) as JSON. Runs under bench.wrap, so the CPU and memory
figures cover the stream, its dbt runs and this small producer.

The target is about the stream's cost *while it follows traffic*, not its start-up (imports, dbt's
parse, a first catch-up batch) nor the producer's CPU that bench.wrap also counts: so the driver reads
the stream process's own CPU (``/proc/<pid>/stat``: utime + stime + cutime + cstime) when traffic starts
and again when the stream has committed the last event, and reports ``stream_cores`` = CPU seconds ÷
wall seconds over that window.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from services.simulator import Simulator


def newest_event_id(data_dir: Path) -> int:
    con = sqlite3.connect(f"file:{data_dir / 'events.sqlite'}?mode=ro", uri=True)
    try:
        return int(con.execute("SELECT coalesce(max(event_id), 0) FROM events").fetchone()[0])
    finally:
        con.close()


def read_stats(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of ``pid`` and its waited-for children so far (None when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # after "pid (comm)": state is field 3, so utime..cstime (fields 14-17) are at offsets 11-14
    ticks = sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def steady_cost(start: tuple[float, float | None], end: tuple[float, float | None]) -> dict:
    """CPU seconds, wall seconds and cores of the stream between two (monotonic, cpu) samples."""
    (t0, c0), (t1, c1) = start, end
    if c0 is None or c1 is None or t1 <= t0:
        return {"stream_cpu_s": None, "stream_wall_s": None, "stream_cores": None}
    return {
        "stream_cpu_s": round(c1 - c0, 2),
        "stream_wall_s": round(t1 - t0, 2),
        "stream_cores": round((c1 - c0) / (t1 - t0), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="benchmark driver for `python -m elt stream`")
    parser.add_argument("--data-dir", type=Path, required=True, help="the fleet's service data")
    parser.add_argument("--stats-file", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of traffic")
    parser.add_argument("--catch-up", type=float, default=120.0, help="seconds to wait for the last event")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--stream-arg",
        action="append",
        default=[],
        help="an extra argument for `python -m elt stream` (repeatable), e.g. --stream-arg=--raw-writer=dlt",
    )
    args = parser.parse_args(argv)
    if args.stats_file.exists():
        args.stats_file.unlink()

    stream = subprocess.Popen(
        [sys.executable, "-m", "elt", "stream", "--stats-file", str(args.stats_file), *args.stream_arg],
        env=os.environ,
        stdout=sys.stderr,  # our stdout carries only the JSON summary
    )
    try:
        # Let the stream start (imports, first catch-up batch) before traffic begins.
        deadline = time.monotonic() + 120
        while not args.stats_file.exists() and time.monotonic() < deadline and stream.poll() is None:
            time.sleep(0.2)
        stop = threading.Event()
        traffic_start = (time.monotonic(), cpu_seconds(stream.pid))
        caught_up = traffic_start
        with Simulator(args.data_dir, args.seed) as sim:
            emitted = sim.run_events(args.rate, duration=args.duration, stop_event=stop)
        last = newest_event_id(args.data_dir)
        deadline = time.monotonic() + args.catch_up
        while time.monotonic() < deadline and stream.poll() is None:
            if int(read_stats(args.stats_file).get("committed_event_id") or 0) >= last:
                caught_up = (time.monotonic(), cpu_seconds(stream.pid))
                break
            time.sleep(0.2)
    finally:
        if stream.poll() is None:
            stream.send_signal(signal.SIGTERM)
        try:
            rc = stream.wait(timeout=180)
        except subprocess.TimeoutExpired:
            stream.kill()
            rc = stream.wait()
    stats = read_stats(args.stats_file)
    stats.update(steady_cost(traffic_start, caught_up))
    stats.update(
        {
            "driver_emitted": emitted,
            "driver_last_event_id": last,
            "stream_rc": rc,
            "rate_per_s": args.rate,
            "duration_s": args.duration,
        }
    )
    sys.stdout.write(json.dumps(stats) + "\n")
    print(
        f"stream probe: {emitted} events at {args.rate}/s for {args.duration}s; p50 "
        f"{stats.get('latency_p50_s')} s p95 {stats.get('latency_p95_s')} s; "
        f"{stats.get('stream_cpu_s')} s CPU in {stats.get('stream_wall_s')} s of traffic "
        f"= {stats.get('stream_cores')} cores; stream rc {rc}",
        file=sys.stderr,
    )
    return 0 if rc == 0 else rc


if __name__ == "__main__":
    sys.exit(main())
