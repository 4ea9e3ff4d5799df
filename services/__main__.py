"""`python -m services start|stop|status|use|release`: the fleet from the command line (services/README.md).

`start`/`stop`/`status` are the user's commands; `ports` prints the fleet's layout as JSON (each
service's port for the port base it would use), which is how a flow run learns it without importing this
package. `use --holder PID` and `release --holder PID` are what a
flow run calls (`python -m elt run`, through elt/fleet.py): a lease for that process, so the run stops
only a fleet a run started and only once no other run uses it. Those two print one JSON object on
stdout for the caller and log to stderr, so a first start's progress is still shown.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

import orjson

from services.launcher import SERVICES, Fleet, FleetError, ForeignFleet

EXIT_FOREIGN = 3  # `use`: the ports serve another fleet (not this run folder's)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services", description="run the shop's five services")
    parser.add_argument("command", choices=("start", "stop", "status", "use", "release", "ports"))
    parser.add_argument(
        "--scale", type=float, help="data scale for a first start (env SHOP_SCALE, default 1)"
    )
    parser.add_argument("--seed", type=int, help="data seed for a first start (env SHOP_SEED, default 42)")
    parser.add_argument("--port-base", type=int, help="ports are base+1..base+5 (env SHOP_PORT_BASE, 8100)")
    parser.add_argument("--data-dir", help="SQLite folder (env SHOP_SERVICES_DATA, default data/services)")
    parser.add_argument("--run-dir", help="pids, logs, fleet.env (env SHOP_RUN_DIR, default run)")
    parser.add_argument("--timeout", type=float, default=10.0, help="stop: seconds before SIGKILL")
    parser.add_argument(
        "--lock-wait",
        type=float,
        help="seconds to wait for another start/stop (env SHOP_FLEET_LOCK_WAIT, 900)",
    )
    parser.add_argument("--holder", type=int, help="use/release: the pid of the run using the fleet")
    parser.add_argument(
        "--undo", action="store_true", help="release: the run's services step failed; stop what it started"
    )
    return parser


def _lease_command(fleet: Fleet, args: argparse.Namespace) -> int:
    """`use` / `release`: one JSON reply on stdout (the caller parses it), exit 0, 1 or EXIT_FOREIGN."""
    try:
        if args.command == "use":
            reply: dict[str, object] = {"started": fleet.use(args.holder)}
        else:
            stopped, reason = fleet.release(args.holder, undo=args.undo)
            reply = {"stopped": stopped, "reason": reason}
        code = 0
    except ForeignFleet as exc:
        reply, code = {"error": str(exc)}, EXIT_FOREIGN
    except FleetError as exc:
        reply, code = {"error": str(exc)}, 1
    if "error" in reply:
        print(f"error: {reply['error']}", file=sys.stderr)
    print(orjson.dumps(reply).decode(), flush=True)
    return code


def _describe_users(fleet: Fleet) -> list[str]:
    owner, leases = fleet.ownership()
    lines = [f"owner      {owner.describe()}" if owner else "owner      none recorded"]
    lines += [f"used by    {lease.holder.describe()}" for lease in leases]
    return lines


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    """SIGTERM as an exception: a start interrupted by it stops what it spawned (Fleet._bring_up)."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    leasing = args.command in ("use", "release")
    if leasing and args.holder is None:
        print(f"error: `{args.command}` needs --holder PID (the run using the fleet)", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(message)s",
        stream=sys.stderr if leasing else sys.stdout,  # use/release keep stdout for their JSON reply
    )
    fleet = Fleet(
        run_dir=args.run_dir,
        data_dir=args.data_dir,
        port_base=args.port_base,
        scale=args.scale,
        seed=args.seed,
        lock_wait=args.lock_wait,
    )
    if leasing:
        return _lease_command(fleet, args)
    if args.command == "ports":
        layout = {"port_base": fleet.port_base, "ports": {name: fleet.port(name) for name in SERVICES}}
        print(orjson.dumps(layout).decode(), flush=True)
        return 0
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
    for line in _describe_users(fleet):
        print(line)
    return 0 if all(st.healthy for st in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
