"""The code location: ``defs``, found through ``[tool.dagster]`` in pyproject.toml.

What is in it, and where it comes from:

- ``extract_<source>``: a multi-asset per file in ``sources/`` (raw_assets.py), and a job per source,
  ``load_<source>``;
- ``dbt_build``: every model, seed and snapshot of the dbt manifest, dbt tests as checks (dbt_assets.py);
- ``exports/parquet``: the publish, downstream of the published marts (export_asset.py);
- ``batch``: all of the above, what ``make elt`` does, on ``batch_schedule`` (``SHOP_ORCHESTRATE_CRON``);
- ``source_freshness``: dbt source freshness as checks on the raw tables, on ``freshness_schedule``;
- ``stream`` and its sensor ``keep_stream_running`` (stream.py).

Every job runs in one process (``in_process_executor``). Why: every step writes the one DuckDB file
under the one warehouse lock, so steps could not run in parallel anyway; one process per run saves an
interpreter and a code-location load per step, and keeps one fleet lease for the whole run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from extract.spec import Service
from orchestration import dbt_assets, export_asset, freshness, manifest, raw_assets, settings, stream
from orchestration.fleet_resource import LocalFleet

BATCH_JOB = "batch"
FRESHNESS_JOB = "source_freshness"
# on every job that writes the warehouse in short steps (not the stream, which runs for days): a run
# coordinator limit on this tag lets one such run go at a time (docs/orchestration.md, "Deploying")
WRITER_TAG = {"warehouse": "writer"}


def _status(running: bool) -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED


def build_definitions(
    manifest_path: Path, services: Mapping[str, Service] | None = None, *, manage_services: bool = True
) -> dg.Definitions:
    """The definitions for the dbt manifest at ``manifest_path`` and the sources ``services`` (default:
    the source registry, ``extract.sources.SERVICES``). ``manage_services=False``: runs never start or
    stop the local fleet (``--no-services``)."""
    if services is None:
        from extract.sources import SERVICES

        services = SERVICES
    dbt_manifest = dbt_assets.load_manifest(manifest_path)
    rules = dbt_assets.source_freshness_rules(dbt_manifest)
    sources = {name: raw_assets.source_asset(service, rules) for name, service in services.items()}
    dbt_def = dbt_assets.dbt_build_assets(manifest_path)
    published = dbt_assets.published_keys(dbt_manifest)
    export_def = export_asset.export_asset(published)
    freshness_def = freshness.freshness_checks(dbt_manifest, rules)

    every_asset = dg.AssetSelection.all() - dg.AssetSelection.checks(freshness_def)
    batch = dg.define_asset_job(
        BATCH_JOB,
        selection=every_asset,
        tags=WRITER_TAG,
        description="The whole flow, as `make elt`: every source loaded, dbt build (tests as checks), "
        "publish.",
    )
    per_source = [
        dg.define_asset_job(
            f"load_{name}",
            selection=dg.AssetSelection.assets(assets_def).without_checks(),
            tags=WRITER_TAG,
            description=f"Load the {name} source only (python -m extract {name}).",
        )
        for name, assets_def in sources.items()
    ]
    freshness_job = dg.define_asset_job(
        FRESHNESS_JOB,
        selection=dg.AssetSelection.checks(freshness_def),
        tags=WRITER_TAG,
        description="dbt source freshness of every raw table with a freshness rule.",
    )
    realtime = [key for key in published if key in set(dbt_assets.realtime_keys(dbt_manifest))]
    jobs: list = [batch, *per_source, freshness_job]
    sensors = []
    if stream.STREAM_SOURCE in services:
        stream_job = stream.stream_job(realtime)
        jobs.append(stream_job)
        sensors.append(stream.stream_keeper(stream_job))
    running = settings.schedules_running()
    schedules = [
        dg.ScheduleDefinition(
            name="batch_schedule",
            job=batch,
            cron_schedule=settings.batch_cron(),
            execution_timezone=settings.schedule_timezone(),
            default_status=_status(running),
            description="The batch flow (SHOP_ORCHESTRATE_CRON).",
        ),
        dg.ScheduleDefinition(
            name="freshness_schedule",
            job=freshness_job,
            cron_schedule=settings.freshness_cron(),
            execution_timezone=settings.schedule_timezone(),
            default_status=_status(running),
            description="dbt source freshness (SHOP_FRESHNESS_CRON).",
        ),
    ]
    return dg.Definitions(
        assets=[*sources.values(), dbt_def, export_def],
        asset_checks=[freshness_def],
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={"dbt": dbt_assets.dbt_resource(), "fleet": LocalFleet(manage=manage_services)},
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded by Dagster's tools, not on import: the manifest is parsed first when the project changed."""
    return build_definitions(manifest.ensure())
