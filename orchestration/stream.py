"""The events stream as a Dagster job, and a sensor that keeps it running.

The job runs ``python -m elt stream`` (``make stream``) as a child for as long as the run lives:
the stream loads micro-batches into ``raw_events.events``, rebuilds the real-time marts and republishes
them to ``exports/realtime``, taking the warehouse lock only while a batch commits. The batch job's
steps take the same lock, so scheduled runs and the stream interleave without a lock error (each waits
its turn, bounded by ``SHOP_LOCK_WAIT``). Terminating the run sends the stream SIGTERM: it finishes the
batch in flight and exits 0 (``core.signals.stop_child``); it also dies with the run worker.

While it runs, the op reports each new stretch of batches as materialisations of ``raw_events.events``
and of the real-time marts (events, batches, latency, export version from the stream's stats file).
The sensor (off by default; switch it on in the UI) starts the job whenever no run of it is active,
so a stream that stopped - a failed batch, a restart of the instance - comes back on its own.
"""

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dagster as dg

from core import lock, settings, signals
from orchestration.fleet_resource import LocalFleet
from orchestration.raw_assets import raw_key

STREAM_SOURCE = "events"  # the feed the stream follows (elt/stream/feed.py)
STREAM_JOB = "stream"
ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


class StreamConfig(dg.Config):
    """The stream's own options (``python -m elt stream --help``); ``report_seconds``: how often
    new batches are reported as materialisations."""

    batch_max_events: int = 1000
    batch_max_seconds: float = 1.0
    dbt_command: str = "run"
    once: bool = False
    report_seconds: float = 60.0


def _stats(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def stream_job(realtime_marts: list[dg.AssetKey]) -> dg.JobDefinition:
    """The job that follows the stream; ``realtime_marts`` are the marts it keeps fresh (tag realtime)."""
    reported = [raw_key(STREAM_SOURCE, STREAM_SOURCE), *realtime_marts]

    @dg.op(description="python -m elt stream: follow the events feed until the run is terminated.")
    def follow_events_stream(context: dg.OpExecutionContext, config: StreamConfig, fleet: LocalFleet) -> None:
        fleet.ensure([STREAM_SOURCE])
        stats_file = settings.run_dir() / "stream" / f"dagster-{context.run_id[:8]}.json"
        args = [
            sys.executable,
            "-m",
            "elt",
            "stream",
            "--batch-max-events",
            str(config.batch_max_events),
            "--batch-max-seconds",
            str(config.batch_max_seconds),
            "--dbt-command",
            config.dbt_command,
            "--stats-file",
            str(stats_file),
            *(["--once"] if config.once else []),
        ]
        context.log.info("stream: %s", " ".join(args[1:]))
        last: dict[str, Any] = {}

        def report(final: bool) -> None:
            nonlocal last
            now = _stats(stats_file)
            if now.get("batches", 0) == last.get("batches", 0) and not final:
                return
            metadata = {
                "batches": int(now.get("batches", 0)) - int(last.get("batches", 0)),
                "events": int(now.get("events", 0)) - int(last.get("events", 0)),
                "latency_p50_s": now.get("latency_p50_s"),
                "latency_p95_s": now.get("latency_p95_s"),
                "export_version": str(now.get("export_version")),
                "ops_rows": dg.MetadataValue.md(
                    "```sql\nselect * from ops.stream_batches order by batch_no desc limit 20;\n```"
                ),
            }
            if metadata["batches"]:
                for key in reported:
                    context.log_event(dg.AssetMaterialization(asset_key=key, metadata=metadata))
            last = now

        with subprocess.Popen(
            args, cwd=settings.repo_root(), env=lock.child_env(), preexec_fn=signals.die_with_parent
        ) as proc:
            try:
                while True:
                    try:
                        code = proc.wait(timeout=config.report_seconds)
                        break
                    except subprocess.TimeoutExpired:
                        report(final=False)
            except BaseException:  # the run was terminated (or failed): let the batch in flight finish
                signals.stop_child(proc)
                report(final=True)
                raise
        report(final=True)
        if code != 0:
            raise dg.Failure(description=f"`python -m elt stream` exited {code} (see its output above)")

    @dg.job(name=STREAM_JOB, description="The events stream: real-time marts kept fresh (make stream).")
    def _stream() -> None:
        follow_events_stream()

    return _stream


def stream_keeper(job: dg.JobDefinition) -> dg.SensorDefinition:
    """Start the stream job whenever no run of it is active (off by default)."""

    @dg.sensor(
        job=job,
        name="keep_stream_running",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Starts the stream job when no run of it is queued or running.",
    )
    def _keeper(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        active = context.instance.get_runs(filters=dg.RunsFilter(job_name=job.name, statuses=ACTIVE), limit=1)
        if active:
            return dg.SkipReason(f"the stream is running (run {active[0].run_id[:8]})")
        return dg.RunRequest(tags={"started_by": "keep_stream_running", "at": str(int(time.time()))})

    return _keeper
