"""``python -m orchestration``: the Dagster UI (``make orchestrate``) and one headless run (``make
orchestrate-run``).

    python -m orchestration ui [--port N]                      # Dagster UI + daemon on 127.0.0.1
    python -m orchestration run [--job batch] [--no-services]  # one run in this process; exit 0 / 1

Both use the instance in ``DAGSTER_HOME`` (default ``run/dagster``, telemetry off, orchestration/
settings.py), so a headless run shows in the UI's history next to the scheduled ones. A run bootstraps
like ``make elt``: its first extract step leases the local fleet (starting it when it is down) and the
run releases it at its end (orchestration/fleet_resource.py); ``--no-services`` leaves the services alone.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

from core import file_modes, settings, signals
from orchestration import settings as orch_settings

log = logging.getLogger("orchestration")


def _cmd_ui(args: argparse.Namespace) -> int:
    """``dagster dev`` on loopback, from the repo root (where pyproject.toml names the code location).

    It runs in a process group of its own, and Ctrl-C or SIGTERM is passed on to the whole group. Why
    not just exec it: ``dagster dev`` was seen ignoring SIGINT and SIGTERM for over 30 s, so after the
    grace period (``SHOP_STOP_GRACE_SECONDS``) what is left of the group gets SIGKILL, and the command
    always ends. A run still in flight then ends as a failed one; its next run converges as usual."""
    port = args.port or orch_settings.ui_port()
    exe = shutil.which("dagster", path=os.path.dirname(sys.executable)) or "dagster"
    command = [exe, "dev", "--host", "127.0.0.1", "--port", str(port)]
    print(f"Dagster UI on http://127.0.0.1:{port} (instance {os.environ['DAGSTER_HOME']}); Ctrl-C stops it")
    proc = subprocess.Popen(command, cwd=settings.repo_root(), start_new_session=True)
    stop: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        if not stop:
            stop.append(signum)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while proc.poll() is None and not stop:
        time.sleep(0.5)
    if not stop:
        return proc.returncode
    grace = signals.grace_seconds()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        print(
            f"dagster dev still running {grace:.0f}s after the signal: killing its processes", file=sys.stderr
        )
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # what is left of the group (daemon, code server, run workers)
    proc.wait()
    return 128 + stop[0]


def _cmd_run(args: argparse.Namespace) -> int:
    import dagster as dg

    from orchestration import manifest
    from orchestration.definitions import build_definitions

    defs = build_definitions(manifest.ensure(), manage_services=not args.no_services)
    jobs = sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__"))
    if args.job not in jobs:
        print(f"error: no job {args.job!r}; the jobs are: {', '.join(jobs)}", file=sys.stderr)
        return 2
    job = defs.resolve_job_def(args.job)
    started = time.monotonic()
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags={"started_by": "python -m orchestration run"},
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        )
        run = instance.get_run_by_id(result.run_id)
        tags = dict(run.tags) if run else {}
    print(summary(result, time.monotonic() - started, tags), flush=True)
    return 0 if result.success else 1


def summary(result: object, seconds: float, tags: dict[str, str]) -> str:
    """What ran and how it ended: steps, checks (failed ones named), the run's ``shop/`` tags."""
    import dagster as dg

    events = result.all_events  # type: ignore[attr-defined]
    failed_steps = [e for e in events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    done_steps = [e for e in events if e.event_type == dg.DagsterEventType.STEP_SUCCESS]
    skipped = [e for e in events if e.event_type == dg.DagsterEventType.STEP_SKIPPED]
    materialized = [e for e in events if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION]
    checks = [
        e.event_specific_data for e in events if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ]
    failed_checks = [c for c in checks if not c.passed]
    ok = result.success  # type: ignore[attr-defined]
    lines = [
        f"dagster run {result.run_id[:8]} ({result.job_def.name}): "  # type: ignore[attr-defined]
        f"{'SUCCESS' if ok else 'FAILURE'} in {seconds:.1f}s",
        f"  steps: {len(done_steps)} succeeded, {len(failed_steps)} failed, {len(skipped)} skipped",
        f"  assets materialised: {len(materialized)}",
        f"  checks: {len(checks) - len(failed_checks)} passed, {len(failed_checks)} failed",
    ]
    for c in failed_checks[:20]:
        lines.append(f"    failed check {c.asset_check_key.to_user_string()}")
    for e in failed_steps:
        error = e.event_specific_data.error  # type: ignore[union-attr]
        message = (error.message if error else "").strip().splitlines()
        first = message[0] if message else "see the run log"
        head = first.split(": ", 1)[0]
        if ": " in first and "." in head and " " not in head:  # "dagster._core...Failure: what happened"
            first = first.split(": ", 1)[1]
        lines.append(f"  step {e.step_key} failed: {first}")
    for key, value in sorted(tags.items()):
        if key.startswith("shop/"):
            lines.append(f"  {key.removeprefix('shop/')}: {value}")
    if not ok:
        lines.append(
            "  nothing was published unless the publish step succeeded; the run is in the UI's history"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m orchestration", description="the Dagster orchestrator")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ui", help="the Dagster UI and daemon on 127.0.0.1 (schedules and sensors run)")
    p.add_argument("--port", type=int, default=None, help="port (default SHOP_DAGSTER_PORT or 3000)")
    p.set_defaults(func=_cmd_ui)
    p = sub.add_parser("run", help="materialise a job once in this process and exit with its status")
    p.add_argument("--job", default="batch", help="the job to run (default: batch, the whole flow)")
    p.add_argument("--no-services", action="store_true", help="do not start/stop the local fleet")
    p.set_defaults(func=_cmd_run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the instance's storage set-up, every start
    logging.getLogger("dagster").propagate = False  # Dagster prints its own lines: once, not twice
    file_modes.owner_only()  # the instance folder holds run logs: owner-only, like run/
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    orch_settings.prepare_home()
    if args.command == "run":
        signals.install()  # SIGTERM / SIGINT: the step's child stops, the fleet is released, exit 128+N
    try:
        return args.func(args)
    except signals.Interrupted as exc:
        print(f"python -m orchestration run: {exc}; its child processes stopped", file=sys.stderr)
        return exc.exit_code
    except (RuntimeError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
