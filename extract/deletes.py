"""Deletions after a load: erased keys of a deletions feed, and records that mark themselves deleted.

Why after the load and table-wide: an ``updated_since`` pull never sees a record disappear, so raw
only learns of deletions from the data itself - a feed of erased keys (``hard_deletes`` of a source
file) or a field/value on the record (``soft_delete`` of an endpoint). Either way the rows go from raw,
the parent's and its child tables' alike, so dbt never has to know which mechanism a source uses. Each
pass removes *every* matching row, not just this run's, so a run killed between its load and this step
is mended by the next run: the step is idempotent and converges. The children and their parent go in
one transaction (a child row never outlives its parent's removal by a crash).
"""

from __future__ import annotations

import logging
from typing import Any

import dlt

from extract.spec import Endpoint, Service

log = logging.getLogger("extract.deletes")


def _tables(sql: Any, dataset: str) -> set[str]:
    return {
        row[0]
        for row in sql.execute_sql(
            "select table_name from information_schema.tables where table_schema = %s", dataset
        )
    }


def _count(rows: Any) -> int:
    return int(rows[0][0]) if rows else 0


def _match(sql: Any, keys: tuple[str, ...], left: str, right: str) -> str:
    """``left.k1 = right.k1 and ...`` over the key columns."""
    return " and ".join(
        f"{left}.{sql.escape_column_name(k)} = {right}.{sql.escape_column_name(k)}" for k in keys
    )


def apply_hard_deletes(pipeline: dlt.Pipeline, service: Service) -> int:
    """Remove erased keys (the deletions feed, a one-field or composite key) from the service's raw
    tables; idempotent. Returns the rows removed."""
    if not service.hard_delete_feed:
        return 0
    keys = service.endpoint(service.hard_delete_feed).keys
    removed = 0
    with pipeline.sql_client() as sql:
        existing = _tables(sql, pipeline.dataset_name)
        if service.hard_delete_feed not in existing:
            return 0
        feed_table = sql.make_qualified_table_name(service.hard_delete_feed)
        for table in service.hard_delete_tables:
            if table not in existing:
                continue
            target = sql.make_qualified_table_name(table)
            if len(keys) == 1:
                key = sql.escape_column_name(keys[0])
                query = f"delete from {target} where {key} in (select {key} from {feed_table})"
            else:
                query = (
                    f"delete from {target} as t where exists (select 1 from {feed_table} as f"
                    f" where {_match(sql, keys, 'f', 't')})"
                )
            n = _count(sql.execute_sql(query))
            removed += n
            if n:
                log.info("%s: removed %d erased row(s) from raw_%s.%s", service.name, n, service.name, table)
    return removed


def soft_deleted_condition(sql: Any, ep: Endpoint, alias: str) -> tuple[str, tuple[Any, ...]]:
    """The SQL condition (and its parameters) of a row of ``ep``'s table that marks itself deleted."""
    soft = ep.soft_delete
    assert soft is not None
    column = f"{alias}.{sql.escape_column_name(soft.column)}"
    if soft.not_null:
        return f"{column} is not null", ()
    return f"{column} = %s", (soft.equals,)


def apply_soft_deletes(pipeline: dlt.Pipeline, service: Service) -> int:
    """Remove the rows whose record marks itself deleted (``soft_delete``), with their child rows;
    idempotent. Returns the rows removed (parents and children)."""
    endpoints = [ep for ep in service.endpoints if ep.soft_delete is not None]
    if not endpoints:
        return 0
    removed = 0
    with pipeline.sql_client() as sql:
        existing = _tables(sql, pipeline.dataset_name)
        for ep in endpoints:
            if ep.name not in existing:
                continue
            parent = sql.make_qualified_table_name(ep.name)
            where, args = soft_deleted_condition(sql, ep, "p")
            counts: dict[str, int] = {}
            with sql.begin_transaction():
                for child in ep.children:
                    table = f"{ep.name}__{child}"
                    if table not in existing:
                        continue
                    target = sql.make_qualified_table_name(table)
                    counts[table] = _count(
                        sql.execute_sql(
                            f"delete from {target} as c where exists (select 1 from {parent} as p"
                            f" where {where} and {_match(sql, ep.keys, 'p', 'c')})",
                            *args,
                        )
                    )
                counts[ep.name] = _count(sql.execute_sql(f"delete from {parent} as p where {where}", *args))
            for table, n in counts.items():
                if n:
                    log.info(
                        "%s: removed %d row(s) marked deleted (%s) from raw_%s.%s",
                        service.name,
                        n,
                        ep.soft_delete.field if ep.soft_delete else "",
                        service.name,
                        table,
                    )
                removed += n
    return removed


def apply_deletes(pipeline: dlt.Pipeline, service: Service) -> int:
    """Both kinds of deletion after a load of ``service``; the rows removed."""
    return apply_hard_deletes(pipeline, service) + apply_soft_deletes(pipeline, service)
