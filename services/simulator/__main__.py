"""``python -m services.simulator``: change the running fleet's data at a rate, or by a number of steps.

    python -m services.simulator --data-dir D --rate 50 [--duration 60] --seed 7
    python -m services.simulator --data-dir D --steps 500 --seed 7        # prints a one-line summary
    python -m services.simulator --data-dir D --steps 500 --detail        # ... and counts per table
    python -m services.simulator --data-dir D --steps 500 --json          # the whole summary (JSON)
    python -m services.simulator --data-dir D --rate 2000 --events-only   # steady events feed

``--late-commit-share 0.1`` stamps a tenth of the changes ``--late-seconds`` in the past (see
``services.simulator.simulator``). Defaults come from ``SHOP_SERVICES_DATA`` (relative to the repo root)
and ``SHOP_SEED``.

Why one line by default: the full summary lists every id created or touched (tens of kilobytes for
500 steps), which is what a test wants (``Simulator.step`` returns it) but not a person at a terminal.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from services.common.settings import services_data_dir
from services.simulator.simulator import Simulator

log = logging.getLogger("services.simulator")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.simulator", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=services_data_dir())
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SHOP_SEED", "42")))
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--rate", type=float, help="changes (or events with --events-only) per second")
    mode.add_argument("--steps", type=int, help="apply exactly this many changes, print the summary, exit")
    parser.add_argument(
        "--duration", type=float, default=None, help="seconds to run with --rate (default: forever)"
    )
    parser.add_argument("--late-commit-share", type=float, default=0.0)
    parser.add_argument("--late-seconds", type=float, default=5.0)
    parser.add_argument("--events-only", action="store_true", help="with --rate: only append browse events")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument(
        "--detail", action="store_true", help="with --steps: also the records per table and the late commits"
    )
    shown.add_argument("--json", action="store_true", help="with --steps: print the whole summary as JSON")
    return parser.parse_args(argv)


def summary_line(summary: dict[str, Any], seconds: float, data_dir: Path) -> str:
    """One line for a batch of steps: how many, which, how long, how many late commits."""
    first, steps = summary["first_step"], summary["steps"]
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(summary["kinds"].items(), key=lambda kv: -kv[1]))
    late = f"; {len(summary['late'])} late commits" if summary["late"] else ""
    span = f"steps {first}-{first + steps - 1}" if steps else "no steps"
    return f"simulator: {steps} changes ({span}) to {data_dir} in {seconds:.2f} s: {kinds or 'none'}{late}"


def detail_lines(summary: dict[str, Any]) -> list[str]:
    """Per table: records created and touched; then one line per late commit."""
    lines = [
        f"  {table}: {len(summary['created'][table])} created, {len(ids)} touched"
        for table, ids in summary["touched"].items()
        if ids
    ]
    for late in summary["late"]:
        keys: dict[str, list[int]] = {}
        for table, key in late["records"]:
            keys.setdefault(table, []).append(key)
        records = ", ".join(
            f"{t} {ids[0]}" if len(ids) == 1 else f"{len(ids)} {t}" for t, ids in keys.items()
        )
        lines.append(
            f"  late commit: step {late['step']} {late['kind']} ({records}) stamped {late['stamped_at']}, "
            f"committed {late['committed_at']}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    started = time.monotonic()
    with Simulator(args.data_dir, args.seed, late_seconds=args.late_seconds) as sim:
        if args.steps is not None:
            summary = sim.step(args.steps, args.late_commit_share)
            if args.json:
                sys.stdout.write(orjson.dumps(summary).decode() + "\n")
            else:
                lines = [summary_line(summary, time.monotonic() - started, args.data_dir)]
                sys.stdout.write("\n".join(lines + (detail_lines(summary) if args.detail else [])) + "\n")
        elif args.events_only:
            sim.run_events(args.rate, args.duration, stop)
        else:
            sim.run(args.rate, args.duration, stop, args.late_commit_share)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
