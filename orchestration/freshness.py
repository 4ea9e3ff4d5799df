"""dbt source freshness as asset checks on the raw tables.

dbt measures freshness itself (each source's ``loaded_at_query`` and ``freshness`` rule in
``models/staging/*/_*__sources.yml``), so the check runs ``dbt source freshness`` through the project's
dbt wrapper (warehouse lock, dbt environment) and turns each source table's result into a check on its
raw asset: pass, warn (stale past ``warn_after``: a warning) or error (past ``error_after``: failed).
It runs on its own schedule (``SHOP_FRESHNESS_CRON``) and from the UI, not in the batch job, whose
loads have just made every table fresh.
"""

import json
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg

from core import lock
from elt import flow
from orchestration import runlog
from orchestration.dbt_assets import source_key
from transform import dbt_artifacts, dbt_runner

CHECK_NAME = "dbt_source_freshness"


def freshness_checks(
    manifest: Mapping[str, Any], rules: Mapping[dg.AssetKey, dict]
) -> dg.AssetChecksDefinition:
    """One check per dbt source table with a freshness rule (``rules``, by raw asset key)."""
    selectors = {
        source_key(manifest, uid): f"source:{node['source_name']}.{node['name']}"
        for uid, node in manifest["sources"].items()
        if source_key(manifest, uid) in rules
    }
    specs = [
        dg.AssetCheckSpec(
            CHECK_NAME,
            asset=key,
            description="dbt source freshness: warn after {warn}, error after {error}".format(
                warn=_rule_text(rules[key].get("warn_after")), error=_rule_text(rules[key].get("error_after"))
            ),
        )
        for key in sorted(selectors, key=lambda k: k.to_user_string())
    ]

    @dg.multi_asset_check(specs=specs, name="dbt_source_freshness", can_subset=True)
    def _freshness(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        keys = [check.asset_key for check in context.selected_asset_check_keys]
        output = (
            dbt_artifacts.target_dir() / "dagster" / f"sources-{runlog.op_context(context).run_id[:8]}.json"
        )
        args = ["source", "freshness", "--output", str(output), "--select", *(selectors[k] for k in keys)]
        try:
            outcome = dbt_runner.run_dbt(
                args, wait=flow.lock_wait(), owner=runlog.command(context, "freshness")
            )
        except lock.WarehouseBusy as exc:
            raise dg.Failure(description=f"dbt source freshness: {exc}") from None
        try:
            results = {r["unique_id"]: r for r in json.loads(output.read_text()).get("results", [])}
        except (OSError, ValueError):
            raise dg.Failure(
                description=f"dbt source freshness exited {outcome.exit_code} without results (output above)"
            ) from None
        by_key = {source_key(manifest, uid): r for uid, r in results.items() if uid in manifest["sources"]}
        for key in keys:
            result = by_key.get(key)
            status = str((result or {}).get("status", "no result"))
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=CHECK_NAME,
                passed=status == "pass",
                severity=dg.AssetCheckSeverity.WARN if status == "warn" else dg.AssetCheckSeverity.ERROR,
                metadata={
                    "status": status,
                    "max_loaded_at": str((result or {}).get("max_loaded_at")),
                    "age_seconds": float((result or {}).get("max_loaded_at_time_ago_in_s") or 0.0),
                },
            )

    return _freshness


def _rule_text(rule: dict | None) -> str:
    if not rule or not rule.get("count"):
        return "never"
    return f"{rule['count']} {rule['period']}(s)"
