"""Declarative description of the services: what each endpoint serves and how to walk it.

Configuration over code: a service is one YAML file in ``sources/`` (``extract/sourcefile.py`` validates
it and builds these objects; the keys are in docs/sources.md), so the engine only ever sees the frozen
dataclasses below, whoever wrote the file. Field types use a tiny vocabulary
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

AuthKind = Literal["none", "api_key", "bearer", "basic", "oauth2"]
PaginatorKind = Literal["none", "cursor", "offset", "page_number", "link_header", "json_link", "id_cursor"]
Mode = Literal["updated", "append_id", "snapshot"]
# what an ``updated`` cursor field holds: an ISO 8601 timestamp (any offset), epoch seconds or
# milliseconds, an integer (a version or change number) or a string that orders lexicographically
CursorType = Literal["timestamp", "epoch_s", "epoch_ms", "integer", "string"]
TIME_CURSORS = ("timestamp", "epoch_s", "epoch_ms")
# how the lower bound is written into ``since_param``; ``raw``: as the records carry the cursor
SinceFormat = Literal["raw", "iso8601", "iso8601_seconds", "date", "epoch_s", "epoch_ms"]
BODY = "$"  # records path of a body that is itself the JSON array of records


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
class AuthSpec:
    """How requests authenticate; the secrets themselves are never here (``extract.config`` reads them).

    ``api_key`` goes in ``header``, or in the query parameter ``query_param`` when that is set;
    ``oauth2`` posts the client credentials to ``token_url`` (a path is relative to the base URL).
    """

    kind: AuthKind = "none"
    header: str = "X-API-Key"
    query_param: str | None = None
    token_url: str = "/oauth/token"
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Paging:
    """Where each pagination style finds its next page, and where the API reports its total.

    One flat set of knobs with the shop's conventions as defaults: each style reads only its own
    (the source file schema allows only those per ``kind``). Paths are dotted keys into the body.
    ``total_header`` (e.g. ``X-Total-Count``) wins over ``total_path``; either one arms the short-walk
    guard (``extract.paginators.walk``).
    """

    limit_param: str | None = "limit"
    cursor_path: str = "next_cursor"
    cursor_param: str = "cursor"
    offset_param: str = "offset"
    page_param: str = "page"
    first_page: int = 1
    stop_on_short_page: bool = True
    total_pages_path: str | None = None
    next_path: str = "links.next"
    has_more_path: str = "has_more"
    next_id_path: str = "next_after_id"
    after_param: str = "after_id"
    total_path: str | None = None
    total_header: str | None = None


@dataclass(frozen=True)
class SoftDelete:
    """A record that says it is deleted: ``field`` equals ``equals``, or (``not_null``) is set at all.

    Such rows are removed from the endpoint's table and its child tables after each load, the way the
    deletions feed removes erased keys (``extract.deletes.apply_deletes``)."""

    field: str
    equals: Any = True
    not_null: bool = False

    @property
    def column(self) -> str:
        """The raw column of ``field`` (a nested ``a.b`` is flattened to ``a__b``)."""
        return self.field.replace(".", "__")


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
    ``records`` is the dotted path of the record list in the body (``$``: the body is the list);
    ``paging`` the knobs of the ``paginator`` style; ``page_size`` overrides the service's knob.
    ``primary_key`` is one field or a tuple of fields (a composite key; ``keys`` is always the tuple).
    An ``updated`` cursor is of ``cursor_type``, sent as ``since_param`` (None: the API takes no lower
    bound, the window filters) written as ``since_format``, re-reading ``lag`` (seconds for a time
    cursor, cursor units for an integer one; None: the service's ``lag_seconds`` knob, 0 for integers).
    ``error_path`` is the body path of an error envelope (a 200 with a value there is an error).
    """

    name: str
    path: str
    fields: dict[str, FieldSpec]
    primary_key: str | tuple[str, ...]
    paginator: PaginatorKind
    mode: Mode = "updated"
    cursor: str | None = "updated_at"
    since_param: str | None = "updated_since"
    cursor_type: CursorType = "timestamp"
    since_format: SinceFormat = "raw"
    lag: float | None = None
    soft_delete: SoftDelete | None = None
    error_path: str | None = "error"
    children: dict[str, str] = field(default_factory=dict)
    loose: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    records: str = "data"
    paging: Paging = field(default_factory=Paging)
    page_size: int | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        """The key fields (one, or the parts of a composite key)."""
        return (self.primary_key,) if isinstance(self.primary_key, str) else tuple(self.primary_key)

    @property
    def child_fields(self) -> dict[str, dict[str, FieldSpec]]:
        """Element fields of each child list."""
        return {name: self.fields[name][0] for name in self.children}


@dataclass(frozen=True)
class Service:
    """One service: its auth scheme, its endpoints and the loader's post-load duties.

    ``auth`` is the scheme's kind (what ``extract.config`` needs to know which secrets to read),
    ``auth_spec`` its details. ``embedded`` marks the shop's own services (started by the local fleet);
    ``source_file`` is the file it came from, for messages that say what to edit.
    """

    name: str
    auth: AuthKind
    endpoints: tuple[Endpoint, ...]
    auth_spec: AuthSpec | None = None
    embedded: bool = False
    source_file: str | None = None
    # hard deletes: (feed endpoint, key) -> rows with that key are removed from these tables after a load
    hard_delete_feed: str | None = None
    hard_delete_tables: tuple[str, ...] = ()
    # the service's OpenAPI document (a path on the base URL, or a URL): checked before every load
    openapi: str | None = None

    @property
    def auth_options(self) -> AuthSpec:
        """``auth_spec``, or the defaults of ``auth``'s kind."""
        return self.auth_spec or AuthSpec(kind=self.auth)

    @property
    def where(self) -> str:
        """The file to edit, for messages (``sources/orders.yml``)."""
        return self.source_file or f"sources/{self.name}.yml"

    def endpoint(self, name: str) -> Endpoint:
        """The endpoint called ``name``."""
        for ep in self.endpoints:
            if ep.name == name:
                return ep
        raise KeyError(f"{self.name} has no endpoint {name!r}")
