"""``python -m services.simulator``: change the running fleet's data at a rate, or by a number of steps.

    python -m services.simulator --data-dir D --rate 50 [--duration 60] --seed 7
    python -m services.simulator --data-dir D --steps 500 --seed 7        # prints the step summary (JSON)
    python -m services.simulator --data-dir D --rate 2000 --events-only   # steady events feed

``--late-commit-share 0.1`` stamps a tenth of the changes ``--late-seconds`` in the past (see
``services.simulator.simulator``). Defaults come from ``SHOP_SERVICES_DATA`` (relative to the repo root)
and ``SHOP_SEED``.
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
    return parser.parse_args(argv)


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
            sys.stdout.write(orjson.dumps(summary).decode() + "\n")
            log.info(
                "applied %d changes to %s in %.2f s: %s",
                args.steps,
                args.data_dir,
                time.monotonic() - started,
                summary["kinds"],
            )
        elif args.events_only:
            sim.run_events(args.rate, args.duration, stop)
        else:
            sim.run(args.rate, args.duration, stop, args.late_commit_share)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
