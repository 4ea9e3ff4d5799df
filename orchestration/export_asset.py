"""The Parquet publish as an asset downstream of every published mart.

It runs the flow's own publish step (``elt.flow.run_publish``: warehouse lock, atomic versioned publish
with its manifest, ``ops.runs`` row) in its standalone form, which first checks
``run/dbt_last_build.json``: when the last dbt build failed nothing is published, whichever way the
publish was started (a run whose dbt step failed never reaches it; one selected on its own is
refused). It also refuses when the last build passed but built only a selection (one mart and its
upstream): the export is a consistent whole, so it follows a whole build, unless the run config says
``allow_partial_build``. Like ``make elt`` it publishes only what changed (unchanged marts carried, no
new version when nothing changed; ``rewrite_all`` in the run config writes everything). Its metadata is
the (new or still current) version's manifest: version id, rows per mart, the dbt
invocation, the ``ops.runs`` row.
"""

import dagster as dg

from core import lock, pii_key
from elt import flow
from orchestration import runlog
from orchestration.dbt_assets import partial_build
from publish import versions
from publish.publish import PublishError
from transform import dbt_runner

EXPORT_KEY = dg.AssetKey(["exports", "parquet"])


class PublishConfig(dg.Config):
    """``keep``: old versions to keep besides the current one (``SHOP_EXPORTS_KEEP``, default 3);
    ``allow_partial_build``: publish although the last dbt build built only a selection;
    ``rewrite_all``: write every mart again instead of carrying the unchanged ones (what
    ``make elt --full-build`` does)."""

    keep: int = versions.default_keep()
    allow_partial_build: bool = False
    rewrite_all: bool = False


def export_asset(published: list[dg.AssetKey]) -> dg.AssetsDefinition:
    """The publish asset, depending on the ``published`` marts (models tagged ``publish``)."""

    @dg.asset(
        key=EXPORT_KEY,
        deps=published,
        group_name="exports",
        kinds={"parquet"},
        description="The published marts as Parquet: a new verified version under exports/, made current "
        "atomically (publish/publish.py, docs/publishing.md).",
    )
    def _publish(context: dg.AssetExecutionContext, config: PublishConfig) -> dg.MaterializeResult:
        command = runlog.command(context, "publish")
        last = dbt_runner.last_build() or {}
        args = [str(a) for a in last.get("args") or []]
        if last.get("exit_code") == 0 and partial_build(last) and not config.allow_partial_build:
            raise dg.Failure(
                description=f"publish: the last dbt build (`dbt {' '.join(args)}`, "
                f"{last.get('finished_at')}) built only a selection; publish after a whole build "
                "(the batch job, or every dbt asset), or set allow_partial_build in the run config"
            )
        try:
            # as `make elt` publishes: a mart equal to the current version's keeps its files, and when
            # every mart is equal no new version is made (publish/carry.py)
            result = flow.run_publish(command, flow.lock_wait(), config.keep, reuse=not config.rewrite_all)
        except (PublishError, pii_key.PiiKeyError, lock.WarehouseBusy) as exc:
            raise dg.Failure(description=f"publish: {exc}") from None
        manifest = versions.read_manifest(result.version_dir)
        rows = {name: int(entry["rows"]) for name, entry in manifest["marts"].items()}
        found = runlog.lookup(command)
        carried = sorted(m.name for m in result.marts if m.carried)
        runlog.tag_run(context, {"export_version": manifest["version"], "export_rows": sum(rows.values())})
        if result.unchanged:
            context.log.info(f"publish: every mart equals version {manifest['version']}: it stays current")
        table = "\n".join(f"| {name} | {n:,} |" for name, n in rows.items())
        return dg.MaterializeResult(
            metadata={
                "version": manifest["version"],
                "rows": sum(rows.values()),
                "rows_per_mart": dg.MetadataValue.json(rows),
                "marts": dg.MetadataValue.md(f"| mart | rows |\n|---|---|\n{table}"),
                "manifest": dg.MetadataValue.path(str(result.version_dir / versions.MANIFEST)),
                "dbt_invocation_id": str((manifest.get("dbt") or {}).get("invocation_id")),
                "seconds": round(result.seconds, 2),
                "unchanged": result.unchanged,  # no new version: the current one already holds this
                "carried_marts": dg.MetadataValue.json(carried),
                "bytes_written": result.bytes_written,
                **runlog.ops_metadata(found.run_ids),
            }
        )

    return _publish
