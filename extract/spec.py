"""Declarative description of the services: what each endpoint serves and how to walk it.

Configuration over code: a new endpoint of an existing service is one ``Endpoint(...)`` entry, a new
service one ``Service(...)`` block in ``extract/sources/<name>.py``. Field types use a tiny vocabulary
("int", "str", "bool", "ts", "float", a dict for a nested object, ``[dict]`` for a list of objects)
that ``arrow_schema`` turns into explicit Arrow types, so every page - even an empty one - gets the
same schema and a type change at the source is caught instead of producing variant columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

FieldSpec = Any  # "int" | "str" | "bool" | "ts" | "float" | dict[str, FieldSpec] | list[dict[str, FieldSpec]]

_SCALARS: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "str": pa.string(),
    "bool": pa.bool_(),
    "float": pa.float64(),
    "ts": pa.timestamp("us", tz="UTC"),
}

AuthKind = Literal["api_key", "bearer", "oauth2"]
PaginatorKind = Literal["cursor", "offset", "link_header", "json_link", "id_cursor"]
Mode = Literal["updated", "append_id", "snapshot"]


def arrow_type(spec: FieldSpec) -> pa.DataType:
    """The Arrow type for one field spec."""
    if isinstance(spec, str):
        return _SCALARS[spec]
    if isinstance(spec, dict):
        return pa.struct([pa.field(name, arrow_type(sub)) for name, sub in spec.items()])
    if isinstance(spec, list) and len(spec) == 1:
        return pa.list_(arrow_type(spec[0]))
    raise ValueError(f"unsupported field spec {spec!r}")


def arrow_schema(fields: dict[str, FieldSpec]) -> pa.Schema:
    """The Arrow schema of a record with these fields."""
    return pa.schema([pa.field(name, arrow_type(sub)) for name, sub in fields.items()])


@dataclass(frozen=True)
class Endpoint:
    """One collection endpoint and the raw table it feeds.

    ``mode`` says how it loads incrementally: ``updated`` (``since_param`` on ``cursor``, merge on
    ``primary_key`` with a lag window), ``append_id`` (``cursor`` is a strictly increasing id, append
    exactly once) or ``snapshot`` (small reference list without a cursor: re-read every run, upserted
    only when its content changed; a record removed at the source stays in raw).
    ``children`` maps a list-of-objects field to the key of its rows; it becomes table
    ``<name>__<field>`` carrying the parent's key and is replaced per parent on merge.
    ``loose`` names nested objects whose keys vary by record (absent keys are just NULL).
    """

    name: str
    path: str
    fields: dict[str, FieldSpec]
    primary_key: str
    paginator: PaginatorKind
    mode: Mode = "updated"
    cursor: str | None = "updated_at"
    since_param: str = "updated_since"
    children: dict[str, str] = field(default_factory=dict)
    loose: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def child_fields(self) -> dict[str, dict[str, FieldSpec]]:
        """Element fields of each child list."""
        return {name: self.fields[name][0] for name in self.children}


@dataclass(frozen=True)
class Service:
    """One service: its auth scheme, its endpoints and the loader's post-load duties."""

    name: str
    auth: AuthKind
    endpoints: tuple[Endpoint, ...]
    page_size_param: str = "limit"
    # hard deletes: (feed endpoint, key) -> rows with that key are removed from these tables after a load
    hard_delete_feed: str | None = None
    hard_delete_tables: tuple[str, ...] = ()

    def endpoint(self, name: str) -> Endpoint:
        """The endpoint called ``name``."""
        for ep in self.endpoints:
            if ep.name == name:
                return ep
        raise KeyError(f"{self.name} has no endpoint {name!r}")
