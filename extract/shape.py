"""Conform a page of records (types inferred from JSON) to the endpoint's declared schema.

This is where schema drift is decided, page by page and column-wise (no per-record Python):

* a declared field absent from the records (removed or renamed at the source) fails the run - loading
  it as NULL from then on would be silent data loss;
* a value of another type than declared (``"12"`` for an int) fails the run instead of becoming a
  dlt variant column;
* a new top-level field is kept as an extra column (raw tables grow additively) and reported once
  per run with its table and column;
* nested objects flatten to ``parent__child`` columns; lists of objects become child tables that
  carry the parent's key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from extract.errors import SchemaDrift
from extract.spec import Endpoint, FieldSpec, arrow_schema, arrow_type

log = logging.getLogger("extract.shape")


@dataclass
class DriftTracker:
    """New columns seen in this run (reported once each) and their types (kept stable across pages)."""

    new_columns: dict[tuple[str, str], pa.DataType] = field(default_factory=dict)

    def note(self, table: str, column: str, dtype: pa.DataType) -> None:
        key = (table, column)
        if key not in self.new_columns:
            self.new_columns[key] = dtype
            log.warning(
                "schema: new column %s.%s (%s) added by the source; raw table grows", table, column, dtype
            )


def _kind(t: pa.DataType) -> str:
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "str"
    if pa.types.is_timestamp(t):
        return "ts"
    if pa.types.is_struct(t):
        return "struct"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "list"
    return str(t)


_COMPATIBLE = {
    "int": {"int"},
    "float": {"int", "float"},
    "bool": {"bool"},
    "str": {"str"},
    "ts": {"str", "ts"},
    "struct": {"struct"},
    "list": {"list"},
}


def _conform(arr: pa.Array, spec: FieldSpec, where: str, loose: bool) -> pa.Array:
    """``arr`` cast to the declared type; raise ``SchemaDrift`` on a type or shape change."""
    target = arrow_type(spec)
    got = _kind(arr.type)
    if got == "null":
        return pa.nulls(len(arr), target)
    want = _kind(target)
    if got not in _COMPATIBLE[want]:
        raise SchemaDrift(
            f"{where}: the source now sends {arr.type} where {target} is declared (type changed)"
        )
    if want == "struct":
        names = {arr.type.field(i).name for i in range(arr.type.num_fields)}
        missing = [name for name in spec if name not in names]
        if missing and not loose:
            raise SchemaDrift(
                f"{where}: field(s) {', '.join(missing)} missing from the source records "
                f"(removed or renamed?); refusing to load them as NULL"
            )
        children = [
            _conform(arr.field(name), sub, f"{where}.{name}", loose) if name in names else pa.nulls(len(arr))
            for name, sub in spec.items()
        ]
        children = [
            c if c.type == arrow_type(s) else pa.nulls(len(arr), arrow_type(s))
            for c, s in zip(children, spec.values(), strict=True)
        ]
        return pa.StructArray.from_arrays(children, fields=list(target), mask=arr.is_null())
    if want == "list":
        values = _conform(arr.values, spec[0], f"{where}[]", loose)
        return pa.ListArray.from_arrays(arr.offsets, values, type=target, mask=arr.is_null())
    if want == "ts" and got == "str":
        return _parse_timestamps(arr, target, where)
    return arr.cast(target)


def _parse_timestamps(arr: pa.Array, target: pa.DataType, where: str) -> pa.Array:
    """ISO 8601 text as UTC timestamps: any offset is converted; a value without one is UTC (what
    Arrow's JSON reader already does for the whole-second values it recognises itself)."""
    try:
        return arr.cast(target)
    except pa.ArrowInvalid:
        pass
    try:
        return arr.cast(pa.timestamp("us")).cast(target)
    except pa.ArrowInvalid:
        # the value itself stays out of the message (it may be personal data)
        raise SchemaDrift(
            f"{where}: a value is not an ISO 8601 timestamp (declared ts; offsets and a missing offset "
            "are each fine, a mix of both in one page is not)"
        ) from None


def _flatten(table: pa.Table) -> pa.Table:
    """Nested objects as ``parent__child`` columns (dlt's naming for flattened dicts)."""
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    return table.rename_columns([name.replace(".", "__") for name in table.column_names])


def _keys_required(table: pa.Table, keys: tuple[str, ...]) -> pa.Table:
    """Mark key columns non-nullable, matching dlt's key hints (keys are checked for nulls first)."""
    fields = [f.with_nullable(False) if f.name in keys else f for f in table.schema]
    return table.cast(pa.schema(fields, metadata=table.schema.metadata))


def empty_tables(ep: Endpoint) -> tuple[pa.Table, dict[str, pa.Table]]:
    """Zero-row tables with the exact schemas a non-empty page produces."""
    parent_fields = {k: v for k, v in ep.fields.items() if k not in ep.children}
    parent = _keys_required(_flatten(arrow_schema(parent_fields).empty_table()), ep.keys)
    children = {}
    for name, child_fields in ep.child_fields.items():
        key_fields = [pa.field(k, arrow_type(ep.fields[k])) for k in ep.keys]
        own = {k: v for k, v in child_fields.items() if k not in ep.keys}  # the parent's key wins
        schema = pa.schema([*key_fields, *arrow_schema(own)])
        children[name] = _keys_required(_flatten(schema.empty_table()), (*ep.keys, ep.children[name]))
    return parent, children


def conform(
    records: pa.Table, ep: Endpoint, table: str, drift: DriftTracker
) -> tuple[pa.Table, dict[str, pa.Table]]:
    """Split a page into the parent table and its child tables, all in the declared schema."""
    if records.num_rows == 0:
        return empty_tables(ep)
    present = set(records.column_names)
    missing = [name for name in ep.fields if name not in present]
    if missing:
        extra = sorted(present - set(ep.fields))
        hint = f"; new fields in the same records: {', '.join(extra)}" if extra else ""
        raise SchemaDrift(
            f"{table}: field(s) {', '.join(missing)} missing from the source records (removed or renamed at "
            f"the source?){hint}. Refusing to load them as NULL; update the fields in sources/<service>.yml"
            " and the dbt models."
        )
    columns: dict[str, pa.Array] = {}
    for name, spec in ep.fields.items():
        arr = records.column(name).combine_chunks()
        columns[name] = _conform(arr, spec, f"{table}.{name}", loose=name in ep.loose)
    for key_name in ep.keys:
        if nulls := columns[key_name].null_count:
            raise SchemaDrift(f"{table}: key column {key_name} is null in {nulls} record(s)")
    parent_cols = {k: v for k, v in columns.items() if k not in ep.children}
    for name in records.column_names:
        if name in ep.fields:
            continue
        arr = records.column(name).combine_chunks()
        if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
            drift.note(table, f"{name} (list, not loaded)", arr.type)
            continue
        flat = _flatten(pa.table({name: arr}))
        for col in flat.column_names:
            carr = flat.column(col).combine_chunks()
            known = drift.new_columns.get((table, col))
            if pa.types.is_null(carr.type):
                if known is None:
                    continue  # all-null so far: nothing to learn the type from yet
                carr = pa.nulls(len(carr), known)
            elif known is not None and carr.type != known:
                try:
                    carr = carr.cast(known)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    raise SchemaDrift(
                        f"{table}.{col}: new column changed type {known} -> {carr.type}"
                    ) from None
            drift.note(table, col, carr.type)
            parent_cols[col] = carr
    parent = _keys_required(_flatten(pa.table(parent_cols)), ep.keys)
    children: dict[str, pa.Table] = {}
    for name in ep.children:
        lists = columns[name]
        values = lists.flatten()
        parents = pc.list_parent_indices(lists)
        child = pa.Table.from_struct_array(values) if len(values) else None
        if child is None:
            children[name] = empty_tables(ep)[1][name]
            continue
        for at, key_name in enumerate(ep.keys):
            if key_name in child.column_names:  # an element that repeats its parent's key: the parent's wins
                child = child.drop_columns([key_name])
            child = child.add_column(at, key_name, columns[key_name].take(parents))
        children[name] = _keys_required(_flatten(child), (*ep.keys, ep.children[name]))
    return parent, children
