"""One multi-asset per source: every raw table a source file defines, loaded by the project's own loader.

Built from the source registry (``extract.sources``: the files of ``sources/`` or ``SHOP_SOURCES_DIR``),
so a source added as a YAML file appears here with its tables and a job of its own, without Dagster
code. The tables are the ones the loader writes into ``raw_<source>``: one per endpoint, one per child
list (``<endpoint>__<field>``), the deferred records of each ``updated`` endpoint
(``<endpoint>__deferred``, docs/consistency.md) and dlt's load log ``_dlt_loads``.

Keys are ``[raw_<source>, <table>]``: the schema and table, which is also how the dbt translator names
dbt sources (dbt_assets.py), so lineage joins raw → staging → marts whatever the dbt source is called.

Why one op per source and not per table: the loader commits a source's tables in one load package (an
order and its items together), so they are materialised together (``can_subset=False``). The op runs
``python -m extract <source>`` through the flow's own extract step (``elt.flow.run_extract``): the same
child process, warehouse lock, ``ops.runs`` row and failure rules as ``make elt``.
"""

from datetime import timedelta

import dagster as dg

from core import lock
from elt import flow
from extract.spec import Service
from orchestration import runlog
from orchestration.fleet_resource import LocalFleet

KINDS = {"dlt", "duckdb"}
LOADS_TABLE = "_dlt_loads"
PERIOD_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class ExtractConfig(dg.Config):
    """``full_refresh``: reload the source from scratch, swapped in atomically (extract/refresh.py)."""

    full_refresh: bool = False


def schema_of(source: str) -> str:
    return f"raw_{source}"


def raw_tables(service: Service) -> list[str]:
    """The tables the loader writes for ``service`` (see the module docstring)."""
    tables: list[str] = []
    for ep in service.endpoints:
        tables.append(ep.name)
        tables += [f"{ep.name}__{child}" for child in ep.children]
        if ep.mode == "updated":
            tables.append(f"{ep.name}__deferred")
    return [*tables, LOADS_TABLE]


def raw_key(source: str, table: str) -> dg.AssetKey:
    return dg.AssetKey([schema_of(source), table])


def _window(rule: dict | None) -> timedelta | None:
    if not rule or not rule.get("count") or rule.get("period") not in PERIOD_SECONDS:
        return None
    return timedelta(seconds=int(rule["count"]) * PERIOD_SECONDS[rule["period"]])


def freshness_policy(dbt_freshness: dict | None) -> dg.FreshnessPolicy | None:
    """Dagster's freshness policy from a dbt source's ``freshness`` (error_after → fail, warn_after → warn),
    so the UI flags a raw table that has not been loaded for as long as dbt would."""
    fail = _window((dbt_freshness or {}).get("error_after"))
    warn = _window((dbt_freshness or {}).get("warn_after"))
    if fail is None:
        return None
    return dg.FreshnessPolicy.time_window(
        fail_window=fail, warn_window=warn if warn and warn < fail else None
    )


def source_asset(service: Service, freshness: dict[dg.AssetKey, dict] | None = None) -> dg.AssetsDefinition:
    """The multi-asset of one source; ``freshness`` holds the dbt freshness rule of its tables, by key."""
    name = service.name
    schema = schema_of(name)
    tables = raw_tables(service)
    freshness = freshness or {}
    specs = [
        dg.AssetSpec(
            raw_key(name, table),
            group_name=schema,
            kinds=KINDS,
            description=(
                f"{schema}.{table}, loaded by `python -m extract {name}` from {service.where}"
                + (" (dlt's load log: one row per committed load)" if table == LOADS_TABLE else "")
            ),
            metadata={"source_file": service.where, "dagster/table_name": f"{schema}.{table}"},
            freshness_policy=freshness_policy(freshness.get(raw_key(name, table))),
        )
        for table in tables
    ]

    @dg.multi_asset(
        name=f"extract_{name}",
        specs=specs,
        can_subset=False,
        description=f"Load the {name} source into {schema} (python -m extract {name}).",
        op_tags={"source": name},
    )
    def _extract(
        context: dg.AssetExecutionContext, config: ExtractConfig, fleet: LocalFleet
    ) -> dg.Output | dg.MaterializeResult:
        fleet.ensure([name])
        command = runlog.command(context, f"extract {name}")
        try:
            seconds, loaded, _ = flow.run_extract(command, config.full_refresh, flow.lock_wait(), [name])
        except (flow.StepFailed, lock.WarehouseBusy) as exc:
            raise dg.Failure(description=f"extract {name}: {exc}") from None
        new_rows = {table: rows for s, table, rows in loaded if s == schema}
        found = runlog.lookup(command, [(schema, t) for t in tables])
        links = runlog.ops_metadata(found.run_ids)
        context.log.info(
            "%s: %s new/changed rows in %.1fs (%s)",
            name,
            f"{sum(new_rows.values()):,}",
            seconds,
            ", ".join(f"{t} {r:,}" for t, r in new_rows.items() if r) or "nothing new",
        )
        runlog.tag_run(context, {f"rows_loaded.{name}": sum(new_rows.values())})
        for table in tables:
            metadata: dict[str, object] = {
                "rows_loaded": new_rows.get(table, 0),
                "seconds": round(seconds, 2),
            }
            if (total := found.rows.get((schema, table))) is not None:
                metadata["dagster/row_count"] = total
            yield dg.MaterializeResult(asset_key=raw_key(name, table), metadata={**metadata, **links})

    return _extract
