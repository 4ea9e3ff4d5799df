"""Run the real-time models' dbt-compiled SQL directly, one DuckDB transaction per micro-batch.

Why not ``dbt run`` per batch: even in-process with a parsed manifest, one invocation of three small
models spends most of its time and CPU in dbt itself (the graph, the relation cache, threads, events,
one connection per model), not in the models' SQL, and the stream pays it every second (the figures
are in docs/stream.md, "Measured"). dbt still owns the models: their SQL is what ``dbt compile``
renders at start-up (``is_incremental()`` true, the look-back macro's bound a subquery on the target),
their post-hooks are rendered by dbt's own model context, and their data tests stay dbt tests (run by
the batch flow's ``dbt build``, or per batch with ``--dbt-command build``, which keeps the dbt path).
What is written here is only the materialization, the statements dbt-duckdb would run:

* ``incremental`` with ``delete+insert``: the new rows into a temporary table, ``delete`` the target's
  rows with the same unique key (the two forms of dbt-duckdb's ``get_delete_insert_merge_sql``), and
  ``insert`` the target's columns from the temporary table, then the post-hooks;
* ``table``: the target emptied and refilled with the model's rows (dbt builds a new table and swaps it
  in; the content is the same and the contract's column types are kept, as the table dbt created at
  start-up has them).

All three models commit in one transaction (dbt commits each model on its own), so a reader of the
warehouse never sees them out of step. Anything this does not know (another materialization or
strategy, pre-hooks, hooks outside the transaction) makes ``compile_plan`` return ``None``, and the
stream keeps running dbt per batch. The compiled SQL evaluates its clock (``utc_today()``) and its
high-water marks when it runs, so it stays right across midnight; a changed model or var needs a
restart, as it does for the parsed manifest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import duckdb

from core.checksums import quote_ident

log = logging.getLogger("elt.stream.directsql")

TEMP_SUFFIX = "__stream_new"


class UnsupportedModel(ValueError):
    """A real-time model whose materialization the direct path does not reproduce."""


@dataclass
class ModelPlan:
    """The statements of one model, in the order dbt-duckdb runs them."""

    unique_id: str
    relation: str  # "database"."schema"."alias"
    statements: list[str]


@dataclass
class DirectPlan:
    """Every real-time model's statements, run together in one transaction per batch."""

    models: list[ModelPlan]

    def run(self, con: duckdb.DuckDBPyConnection) -> None:
        """Execute every model's statements in one transaction on ``con`` (the caller holds the lock)."""
        con.execute("begin transaction")
        try:
            for model in self.models:
                for sql in model.statements:
                    con.execute(sql)
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise


def _unique_key(node: Any) -> list[str] | str:
    key = node.config.get("unique_key")
    if not key:
        raise UnsupportedModel(f"{node.unique_id}: incremental without a unique_key")
    return key if isinstance(key, str) else [str(k) for k in key]


def _delete_sql(relation: str, temp: str, key: list[str] | str) -> str:
    """dbt-duckdb's delete of ``delete+insert`` (macros/materializations/incremental_strategy)."""
    if isinstance(key, str):
        return f"delete from {relation} where ({key}) in (select ({key}) from {temp})"
    matches = " and ".join(f"{temp}.{k} = DBT_INCREMENTAL_TARGET.{k}" for k in key)
    return f"delete from {relation} as DBT_INCREMENTAL_TARGET using {temp} where ({matches})"


def model_statements(node: Any, relation: str, columns: list[str], post_hooks: list[str]) -> list[str]:
    """The statements that refresh one compiled model whose target exists with ``columns``."""
    if not node.compiled_code:
        raise UnsupportedModel(f"{node.unique_id}: not compiled")
    if node.config.pre_hook:
        raise UnsupportedModel(f"{node.unique_id}: pre-hooks")
    if any(not h.transaction for h in node.config.post_hook):
        raise UnsupportedModel(f"{node.unique_id}: a post-hook outside the transaction")
    cols = ", ".join(quote_ident(c) for c in columns)
    materialized = node.config.materialized
    if materialized == "table":
        body = [
            f"delete from {relation}",
            f"insert into {relation} ({cols}) select {cols} from ({node.compiled_code}\n)",
        ]
    elif materialized == "incremental":
        strategy = node.config.get("incremental_strategy")
        if strategy != "delete+insert":
            raise UnsupportedModel(f"{node.unique_id}: incremental strategy {strategy!r}")
        if node.config.get("incremental_predicates") or node.config.get("predicates"):
            raise UnsupportedModel(f"{node.unique_id}: incremental predicates")
        temp = quote_ident(node.alias + TEMP_SUFFIX)
        body = [
            f"create or replace temporary table {temp} as ({node.compiled_code}\n)",
            _delete_sql(relation, temp, _unique_key(node)),
            f"insert into {relation} ({cols}) (select {cols} from {temp})",
        ]
        return [*body, *post_hooks, f"drop table {temp}"]
    else:
        raise UnsupportedModel(f"{node.unique_id}: materialized {materialized!r}")
    return [*body, *post_hooks]


def target_columns(con: duckdb.DuckDBPyConnection, node: Any) -> list[str]:
    """The target table's columns in order (empty when it does not exist)."""
    rows = con.execute(
        "select column_name from information_schema.columns where table_catalog = ? and "
        "table_schema = ? and table_name = ? order by ordinal_position",
        [node.database, node.schema, node.alias],
    ).fetchall()
    return [r[0] for r in rows]


def render_post_hooks(node: Any, manifest: Any) -> list[str]:
    """The model's post-hooks rendered by dbt's own model context (``this``, macros, vars)."""
    if not node.config.post_hook:
        return []
    from dbt.adapters.factory import FACTORY
    from dbt.clients.jinja import get_rendered
    from dbt.context.providers import generate_runtime_model_context

    adapters = list(FACTORY.adapters.values())
    if not adapters:
        raise UnsupportedModel(f"{node.unique_id}: no dbt adapter registered to render its hooks")
    context = generate_runtime_model_context(node, adapters[0].config, manifest)
    rendered = [get_rendered(h.sql, context, node).strip() for h in node.config.post_hook]
    return [sql for sql in rendered if sql]


def compile_plan(con: duckdb.DuckDBPyConnection, nodes: list[Any], manifest: Any) -> DirectPlan | None:
    """The plan for ``nodes`` (compiled by ``dbt compile`` against this warehouse), or None with a
    logged reason when one of them cannot be run directly (the stream then runs dbt per batch)."""
    models: list[ModelPlan] = []
    try:
        for node in nodes:
            relation = ".".join(quote_ident(p) for p in (node.database, node.schema, node.alias))
            columns = target_columns(con, node)
            if not columns:
                raise UnsupportedModel(f"{node.unique_id}: {relation} does not exist")
            statements = model_statements(node, relation, columns, render_post_hooks(node, manifest))
            models.append(ModelPlan(node.unique_id, relation, statements))
    except UnsupportedModel as exc:
        log.warning("the real-time models run through dbt every batch: %s", exc)
        return None
    return DirectPlan(models)
