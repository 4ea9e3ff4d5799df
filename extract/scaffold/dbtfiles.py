"""The dbt side of a new source, from its validated file: ``_<name>__sources.yml``, one staging model per
raw table and ``_<name>__models.yml`` documenting them (what dbt-codegen's ``generate_source`` and
``generate_base_model`` give, in this project's shape).

The shape is the shop's (models/staging/payments/, models/staging/customers/base/): sources read only
rows of committed dlt loads (``committed_loads``), every raw table has a ``row_drop_guard`` and the
schema a freshness rule from ``_dlt_loads``; a model reads its table through ``source_or_empty`` (dlt
creates a table only once it has a row) and every column that may be absent through ``column_or_null``
(dlt creates a column only once it has a non-null value), casts each column to its declared type once
(timestamps to plain UTC with ``to_utc``), keeps the newest version per key, and lists its columns
explicitly. Names stay the API's: the ``renamed`` CTE is where a team renames them.

Every generated node is enabled only while the source's file is one of the loaded sources:
``transform.dbt_runner`` passes their names in ``SHOP_SOURCE_NAMES``, so a test run (which loads only the
shop's embedded files) or a ``SHOP_SOURCES_DIR`` without this file builds without it, and a plain
``dbt`` call (the variable unset) builds everything.
"""

from __future__ import annotations

import functools
import textwrap
from pathlib import Path
from typing import Any

import duckdb

from extract.scaffold.render import scalar
from extract.spec import Endpoint, Service

# The types of source_or_empty's stand-in (it maps them per engine: shop_type in macros/cross_db.sql)
SQL_TYPES = {"int": "bigint", "str": "varchar", "bool": "boolean", "float": "double", "ts": "timestamptz"}
# The casts in the model: the same on DuckDB and Spark (which has no plain `varchar`); timestamps go
# through to_utc, which each engine spells its own way.
CAST_TYPES = {**SQL_TYPES, "str": "{{ dbt.type_string() }}"}
ENV = "SHOP_SOURCE_NAMES"  # set by transform/dbt_runner.py (SOURCE_NAMES_ENV)
LOAD_ID = "_dlt_load_id"
LINE = 100  # wrap long YAML descriptions and source_or_empty maps (sqlfluff allows 120)


@functools.cache
def reserved() -> frozenset[str]:
    """DuckDB's reserved keywords: a column named like one must be quoted."""
    con = duckdb.connect()
    try:
        rows = con.execute("select keyword_name from duckdb_keywords() where keyword_category = 'reserved'")
        return frozenset(r[0] for r in rows.fetchall())
    finally:
        con.close()


def ident(name: str) -> str:
    """A column name in generated SQL: a reserved word goes through ``adapter.quote``, which each engine
    spells its own way (DuckDB double quotes, Spark backticks; Spark reads ``"order"`` as a string)."""
    return f"{{{{ adapter.quote('{name}') }}}}" if name in reserved() else name


def _yaml_ident(name: str) -> str:
    """A column name as a test argument: dbt renders the Jinja of a quoted YAML string."""
    return f'"{ident(name)}"' if name in reserved() else name


def columns(fields: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """(column, scalar type) of flattened fields: a nested object's fields become ``parent__child``."""
    out: list[tuple[str, str]] = []
    for name, spec in fields.items():
        if isinstance(spec, dict):
            out += columns(spec, f"{prefix}{name}__")
        elif isinstance(spec, str):
            out.append((f"{prefix}{name}", spec))
    return out


class Table:
    """One raw table of the source and the staging model built on it."""

    def __init__(self, service: Service, ep: Endpoint, child: str | None = None):
        self.service = service
        self.ep = ep
        self.child = child
        self.name = f"{ep.name}__{child}" if child else ep.name
        self.model = f"stg_{service.name}__{ep.name}_{child}" if child else f"stg_{service.name}__{ep.name}"
        parent_key = (ep.primary_key, ep.fields[ep.primary_key])
        if child:
            self.keys = [ep.primary_key, ep.children[child]]
            self.cols = [parent_key, *columns(ep.child_fields[child])]
        else:
            self.keys = [ep.primary_key]
            self.cols = columns({k: v for k, v in ep.fields.items() if k not in ep.children})
        self.cursor = ep.cursor if ep.mode == "updated" and not child else None


def _select_expr(col: str, kind: str, nullable: bool) -> str:
    """The renamed CTE's expression of one column (the raw name read through ``column_or_null``
    unless it is a key or a reserved word, which is read directly)."""
    raw = ident(col)
    if nullable and raw == col:
        raw = f"{{{{ column_or_null(raw, '{col}') }}}}"
    if kind == "ts":
        inner = raw[3:-3].strip() if raw.startswith("{{") else f"'{raw}'"
        return f"{{{{ to_utc({inner}) }}}} as {ident(col)}"
    return f"cast({raw} as {CAST_TYPES[kind]}) as {ident(col)}"


def _type_map(table: Table) -> list[str]:
    """The ``source_or_empty`` column map, wrapped."""
    # plain names: source_or_empty quotes each one the engine's way
    items = [f"'{c}': '{SQL_TYPES[k]}'" for c, k in table.cols] + [f"'{LOAD_ID}': 'varchar'"]
    lines, line = [], ""
    for item in items:
        candidate = f"{line} {item}," if line else f"{item},"
        if len(candidate) > LINE - 8 and line:
            lines.append(line)
            candidate = f"{item},"
        line = candidate
    lines.append(line)
    return [f"        {x}" for x in lines]


def model_sql(table: Table) -> str:
    """The staging model of one raw table."""
    source = table.service.name
    selects = [_select_expr(c, k, c not in table.keys) for c, k in table.cols]
    selects.append(f"cast({LOAD_ID} as {CAST_TYPES['str']}) as load_id")
    names = [ident(c) for c, _ in table.cols] + ["load_id"]
    order = [f"{ident(table.cursor)} desc"] if table.cursor else []
    order.append("{{ load_order('load_id') }} desc")
    lines = [
        f"{{%- set raw = source('{source}', '{table.name}') -%}}",
        "with",
        "",
        "source as (",
        "    select *",
        f"    from {{{{ source_or_empty('{source}', '{table.name}', {{",
        *_type_map(table),
        "    }) }}",
        f"    where {{{{ committed_loads('{source}') }}}}",
        "),",
        "",
        "renamed as (",
        "    select",
        *[f"        {s}," for s in selects[:-1]],
        f"        {selects[-1]}",
        "    from source",
        "),",
        "",
        "final as (",
        "    select",
        *[f"        {n}," for n in names[:-1]],
        f"        {names[-1]}",
        "    from renamed",
        "    qualify row_number() over (",
        f"        partition by {', '.join(ident(k) for k in table.keys)}",
        f"        order by {', '.join(order)}",
        "    ) = 1",
        ")",
        "",
        "select * from final",
    ]
    return "\n".join(lines) + "\n"


def _desc(indent: int, text: str) -> list[str]:
    """``description: ...`` on one line, or folded when long."""
    pad = " " * indent
    one = f"{pad}description: {scalar(text)}"
    if len(one) <= LINE + 20:
        return [one]
    return [f"{pad}description: >", *[f"{pad}  {x}" for x in textwrap.wrap(text, LINE - indent)]]


def _enabled(indent: int, source: str) -> list[str]:
    pad = " " * indent
    return [
        f"{pad}config:",
        f"{pad}  # on while sources/{source}.yml is a loaded source ({ENV}: transform/dbt_runner.py)",
        f"{pad}  enabled: \"{{{{ '{source}' in env_var('{ENV}', '{source}').split(',') }}}}\"",
    ]


def column_text(table: Table, col: str, descriptions: dict[str, str]) -> str:
    if table.child and col == table.ep.primary_key:
        return f"Key of the parent record ({table.ep.name}.{col})."
    key = f"{table.child}__{col}" if table.child else col
    text = descriptions.get(key)
    if text:
        return text if text.endswith(".") else text + "."
    return f"`{col.replace('__', '.')}` as the API sends it."


def sources_yml(
    service: Service, tables: list[Table], descriptions: dict[str, dict[str, str]], what: str
) -> str:
    name = service.name
    lines = ["version: 2", "", "sources:", f"  - name: {name}"]
    lines += _desc(4, f"{what}, loaded by extract/ from {service.where} into raw_{name}.")
    lines += [f"    schema: raw_{name}"]
    lines += _enabled(4, name)[:]
    lines += [
        "      # a schema is as fresh as its newest committed dlt load",
        f'      loaded_at_query: "select max(inserted_at) from raw_{name}._dlt_loads where status = 0"',
        "      freshness:",
        "        warn_after: {count: 12, period: hour}",
        "        error_after: {count: 48, period: hour}",
        "    tables:",
    ]
    for t in tables:
        lines.append(f"      - name: {t.name}")
        if t.child:
            text = (
                f"Elements of {t.ep.name}.{t.child} (dlt child table, replaced per {t.ep.primary_key}"
                " on merge)."
            )
        else:
            how = {"updated": "merged on", "append_id": "appended by", "snapshot": "merged on"}[t.ep.mode]
            text = f"Records of GET {t.ep.path} ({how} {t.ep.primary_key})."
        lines += _desc(8, text)
        lines += [
            "        data_tests:",
            "          - row_drop_guard:",
            "              arguments:",
            f"                key_column: {t.keys[0]}",
            "        columns:",
        ]
        for col, _ in t.cols:
            lines += [f"          - name: {col}", *_desc(12, column_text(t, col, descriptions[t.ep.name]))]
        lines += [
            f"          - name: {LOAD_ID}",
            *_desc(12, "dlt load package that wrote the row (see _dlt_loads)."),
        ]
    lines += [
        "      - name: _dlt_loads",
        "        description: dlt's load log for this schema; status 0 marks a committed load package.",
        "        columns:",
        "          - name: load_id",
        "            description: Load package id (unix seconds with a fraction, as text).",
        "          - name: schema_name",
        "            description: dlt schema name.",
        "          - name: status",
        "            description: 0 = committed.",
        "          - name: inserted_at",
        "            description: When the package was committed.",
        "          - name: schema_version_hash",
        "            description: Hash of the dlt schema version the package used.",
    ]
    return "\n".join(lines) + "\n"


def models_yml(service: Service, tables: list[Table], descriptions: dict[str, dict[str, str]]) -> str:
    lines = ["version: 2", "", "models:"]
    for i, t in enumerate(tables):
        if i:
            lines.append("")
        lines.append(f"  - name: {t.model}")
        if t.child:
            text = (
                f"Elements of {t.ep.name}.{t.child}, one row per ({', '.join(t.keys)}), committed loads only."
                " Generated by python -m extract init: a starting point to edit."
            )
        else:
            latest = f"latest {t.cursor} per {t.keys[0]}" if t.cursor else f"newest load per {t.keys[0]}"
            text = (
                f"One row per {t.keys[0]} of {t.ep.name} (committed loads only, {latest})."
                " Generated by python -m extract init: a starting point to edit."
            )
        lines += _desc(4, text)
        lines += _enabled(4, service.name)
        if t.child:
            lines += [
                "    data_tests:",
                "      - unique_combination:",
                "          arguments:",
                f"            columns: [{', '.join(t.keys)}]",  # unique_combination quotes them
            ]
        lines.append("    columns:")
        for col, _ in t.cols:
            lines += [f"      - name: {col}", *_desc(8, column_text(t, col, descriptions[t.ep.name]))]
            if col in reserved():
                lines.append("        quote: true")
            if not t.child and col == t.keys[0]:
                lines.append("        data_tests: [unique, not_null]")
            elif t.child and col == t.keys[0]:
                lines += [
                    "        data_tests:",
                    "          - not_null",
                    "          - relationships:",
                    "              arguments:",
                    f"                to: ref('stg_{service.name}__{t.ep.name}')",
                    f"                field: {_yaml_ident(col)}",
                ]
            elif col in t.keys:
                lines.append("        data_tests: [not_null]")
        lines += ["      - name: load_id", "        description: dlt load that wrote this version."]
    return "\n".join(lines) + "\n"


def tables_of(service: Service) -> list[Table]:
    out = []
    for ep in service.endpoints:
        out.append(Table(service, ep))
        out += [Table(service, ep, child) for child in ep.children]
    return out


def render(service: Service, descriptions: dict[str, dict[str, str]], what: str) -> dict[Path, str]:
    """Every dbt file of ``service``, by path relative to the dbt project (``models/staging/<name>/...``).

    ``descriptions``: per endpoint, column -> text (from the OpenAPI document); ``what``: one phrase
    saying what the service is, for the source's description."""
    folder = Path("models") / "staging" / service.name
    tables = tables_of(service)
    files = {
        folder / f"_{service.name}__sources.yml": sources_yml(service, tables, descriptions, what),
        folder / f"_{service.name}__models.yml": models_yml(service, tables, descriptions),
    }
    for t in tables:
        files[folder / f"{t.model}.sql"] = model_sql(t)
    return files
