"""The Parquet publish as an asset downstream of every published mart.

It runs the flow's own publish step (``elt.flow.run_publish``: warehouse lock, atomic versioned publish
with its manifest, ``ops.runs`` row) in its standalone form, which first checks
``run/dbt_last_build.json``: when the last dbt build failed nothing is published, whichever way the
publish was started (a run whose dbt step failed never reaches it; one selected on its own is
refused). Its metadata is the new version's manifest: version id, rows per mart, the dbt invocation.
"""

import dagster as dg

from elt import flow, lock, pii_key, versions
from elt.publish import PublishError
from orchestration import runlog

EXPORT_KEY = dg.AssetKey(["exports", "parquet"])


class PublishConfig(dg.Config):
    """``keep``: old versions to keep besides the current one (``SHOP_EXPORTS_KEEP``, default 3)."""

    keep: int = versions.default_keep()


def export_asset(published: list[dg.AssetKey]) -> dg.AssetsDefinition:
    """The publish asset, depending on the ``published`` marts (models tagged ``publish``)."""

    @dg.asset(
        key=EXPORT_KEY,
        deps=published,
        group_name="exports",
        kinds={"parquet"},
        description="The published marts as Parquet: a new verified version under exports/, made current "
        "atomically (elt/publish.py, docs/publishing.md).",
    )
    def _publish(context: dg.AssetExecutionContext, config: PublishConfig) -> dg.MaterializeResult:
        command = runlog.command(context, "publish")
        try:
            result = flow.run_publish(command, flow.lock_wait(), config.keep)
        except (PublishError, pii_key.PiiKeyError, lock.WarehouseBusy) as exc:
            raise dg.Failure(description=f"publish: {exc}") from None
        manifest = versions.read_manifest(result.version_dir)
        rows = {name: int(entry["rows"]) for name, entry in manifest["marts"].items()}
        found = runlog.lookup(command)
        runlog.tag_run(context, {"export_version": manifest["version"], "export_rows": sum(rows.values())})
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
                **runlog.ops_metadata(found.run_ids),
            }
        )

    return _publish
