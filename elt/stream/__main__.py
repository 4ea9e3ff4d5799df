"""``python -m elt stream``: follow the events feed in micro-batches (see docs/stream.md)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

# Before dlt reads its configuration: the stream handles SIGINT/SIGTERM itself (finish the batch in
# flight, exit 0); dlt's own interception would turn a signal into a failed load instead.
os.environ.setdefault("RUNTIME__INTERCEPT_SIGNALS", "false")
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")

from elt.stream import settings as stream_settings

EXIT_FAILED = 1
EXIT_BUSY = 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d = stream_settings
    p = argparse.ArgumentParser(
        prog="python -m elt stream",
        description="Follow the events feed in micro-batches, exactly once; keep the real-time marts fresh.",
    )
    p.add_argument(
        "--batch-max-events",
        type=int,
        default=d.DEFAULT_BATCH_MAX_EVENTS,
        help="a batch closes once it holds this many events (default %(default)s)",
    )
    p.add_argument(
        "--batch-max-seconds",
        type=float,
        default=d.DEFAULT_BATCH_MAX_SECONDS,
        help="...or this many seconds after its oldest event occurred (default %(default)s)",
    )
    p.add_argument(
        "--batch-cap",
        type=int,
        default=d.DEFAULT_BATCH_CAP,
        help="the most events one batch may grow to when the stream is behind (default %(default)s)",
    )
    p.add_argument(
        "--from-event-id",
        type=int,
        default=None,
        help="start after this event id instead of the committed position",
    )
    p.add_argument(
        "--once",
        action="store_true",
        help="load what is waiting now (up to the cap) as one batch, publish, and exit",
    )
    p.add_argument(
        "--lock-wait",
        type=float,
        default=float(os.environ.get("SHOP_LOCK_WAIT") or d.DEFAULT_LOCK_WAIT),
        help="seconds a batch waits for the warehouse lock before retrying later (default %(default)s)",
    )
    p.add_argument("--no-marts", action="store_true", help="load raw events only (no dbt, no publish)")
    p.add_argument(
        "--dbt-command",
        choices=("build", "run"),
        default="run",
        help="'run' (default: fastest) or 'build' (also runs the real-time models' tests before publishing)",
    )
    p.add_argument(
        "--marts-sql",
        choices=("direct", "dbt"),
        default="direct",
        help="'direct' (default): dbt compiles the real-time models once, each batch runs that SQL; "
        "'dbt': a dbt invocation per batch (always so with --dbt-command build)",
    )
    p.add_argument(
        "--raw-writer",
        choices=("direct", "dlt"),
        default="direct",
        help="'direct' (default): each batch is one DuckDB transaction writing what a dlt load writes; "
        "'dlt': every batch through the dlt pipeline",
    )
    p.add_argument(
        "--stats-file",
        type=Path,
        default=None,
        help="latency statistics JSON (default $SHOP_RUN_DIR/stream-stats.json)",
    )
    p.add_argument(
        "--exports",
        type=Path,
        default=None,
        help="publishing root of the real-time marts (default $SHOP_EXPORTS_DIR/realtime)",
    )
    p.add_argument("--log-level", default=os.environ.get("EXTRACT_LOG_LEVEL", "INFO"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from extract.runner import setup_logging

    setup_logging(args.log_level)
    logging.getLogger("elt.publish").setLevel(logging.WARNING)  # one line per batch is enough
    log = logging.getLogger("elt.stream")
    try:
        cfg = stream_settings.StreamSettings(
            batch_max_events=args.batch_max_events,
            batch_max_seconds=args.batch_max_seconds,
            batch_cap=args.batch_cap,
            from_event_id=args.from_event_id,
            once=args.once,
            lock_wait=args.lock_wait,
            marts=not args.no_marts,
            dbt_command=args.dbt_command,
            marts_sql=args.marts_sql,
            raw_writer=args.raw_writer,
            stats_file=args.stats_file,
            exports=args.exports,
        )
    except ValueError as exc:
        print(f"python -m elt stream: error: {exc}", file=sys.stderr)
        return 2

    from core.pii_key import PiiKeyError
    from elt.stream.lockwait import LockTimeout
    from elt.stream.marts import MartsError
    from elt.stream.runner import StreamRunner
    from extract.errors import ExtractError

    runner = StreamRunner(cfg)
    signal.signal(signal.SIGINT, runner.request_stop)
    signal.signal(signal.SIGTERM, runner.request_stop)
    try:
        return runner.run()
    except LockTimeout as exc:
        log.error("stream not started: %s", exc)
        return EXIT_BUSY
    except (ExtractError, MartsError, PiiKeyError) as exc:
        log.error("stream failed: %s", exc)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
