"""`python -m services start|stop|status`: the fleet from the command line (see services/README.md)."""

from __future__ import annotations

import argparse
import logging
import sys

from services.launcher import Fleet, FleetError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services", description="run the shop's five services")
    parser.add_argument("command", choices=("start", "stop", "status"))
    parser.add_argument(
        "--scale", type=float, help="data scale for a first start (env SHOP_SCALE, default 1)"
    )
    parser.add_argument("--seed", type=int, help="data seed for a first start (env SHOP_SEED, default 42)")
    parser.add_argument("--port-base", type=int, help="ports are base+1..base+5 (env SHOP_PORT_BASE, 8100)")
    parser.add_argument("--data-dir", help="SQLite folder (env SHOP_SERVICES_DATA, default data/services)")
    parser.add_argument("--run-dir", help="pids, logs, fleet.env (env SHOP_RUN_DIR, default run)")
    parser.add_argument("--timeout", type=float, default=10.0, help="stop: seconds before SIGKILL")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    fleet = Fleet(
        run_dir=args.run_dir,
        data_dir=args.data_dir,
        port_base=args.port_base,
        scale=args.scale,
        seed=args.seed,
    )
    try:
        if args.command == "start":
            statuses = fleet.start()
            print(f"fleet up; credentials in {fleet.env_file}")
        elif args.command == "stop":
            stopped = fleet.stop(timeout=args.timeout)
            print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
            return 0
        else:
            statuses = fleet.status()
    except FleetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for st in statuses.values():
        print(st.line())
    return 0 if all(st.healthy for st in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
