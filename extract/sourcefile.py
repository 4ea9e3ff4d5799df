"""A source file (``sources/<name>.yml``): its schema, its validation and the ``Service`` it becomes.

Why a file and pydantic: an ordinary REST service must need no Python, and a typo in its description
must fail loudly instead of silently falling back to a default (``extra="forbid"`` everywhere). The
schema is the single truth: ``extract.sourcedoc`` renders docs/sources.md from it, and the engine only
sees the frozen ``extract.spec`` objects built here, so nothing downstream changes with the format.

Errors name the file, the key path (``sources/orders.yml: endpoints[1].paginator.kind``) and what is
allowed. Secrets have no key here: a key that looks like one is refused with where it belongs.
"""

from __future__ import annotations

import re
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from core import settings
from extract.errors import SourceFileError
from extract.spec import (
    _SCALARS,
    TIME_CURSORS,
    AuthSpec,
    CursorType,
    Endpoint,
    Paging,
    Service,
    SinceFormat,
    SoftDelete,
)

NAME = r"^[a-z][a-z0-9_]*$"
SECRET_KEYS = {"api_key", "token", "password", "username", "user", "client_id", "client_secret", "secret"}
MAX_PROBLEMS = 5


class Strict(BaseModel):
    """Every model of the file: unknown keys are errors, values are not coerced across types."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- auth -----------------------------------------------------------------------------------------
class NoAuth(Strict):
    """No credentials: nothing is added to the requests."""

    kind: Literal["none"]


class ApiKeyAuth(Strict):
    """A static key, secret ``api_key`` (``SOURCES__<NAME>__API_KEY``), in a header or a query parameter."""

    kind: Literal["api_key"]
    header: str = Field("X-API-Key", description="header that carries the key")
    query_param: str | None = Field(
        None, description="send the key as this query parameter instead of the header"
    )


class BearerAuth(Strict):
    """``Authorization: Bearer <token>``, secret ``token`` (``SOURCES__<NAME>__TOKEN``)."""

    kind: Literal["bearer"]


class BasicAuth(Strict):
    """HTTP basic, secrets ``username`` and ``password`` (``SOURCES__<NAME>__USERNAME`` / ``__PASSWORD``)."""

    kind: Literal["basic"]


class OAuth2Auth(Strict):
    """OAuth2 client credentials, secrets ``client_id`` and ``client_secret``; the token is fetched
    before the first request, refreshed ahead of ``expires_in`` and on 401 ``token_expired``."""

    kind: Literal["oauth2"]
    token_url: str = Field("/oauth/token", description="token endpoint: a path on the base URL or a URL")
    scopes: list[str] = Field(default_factory=list, description="scopes requested (`scope` form field)")


AuthModel = Annotated[
    Union[NoAuth, ApiKeyAuth, BearerAuth, BasicAuth, OAuth2Auth],  # noqa: UP007 (the doc walks members)
    Field(discriminator="kind"),
]


# --- pagination -----------------------------------------------------------------------------------
class _Paged(Strict):
    limit_param: str | None = Field(
        "limit", description="query parameter of the page size (`null`: the API takes none)"
    )
    total_path: str | None = Field(
        None, description="body path of the total number of records; the walk must reach it"
    )
    total_header: str | None = Field(
        None, description="response header of that total (e.g. `X-Total-Count`); wins over total_path"
    )


class NoPaginator(_Paged):
    """One request: the first page is all there is."""

    kind: Literal["none"]


class CursorPaginator(_Paged):
    """An opaque token from the body, sent back as a parameter; ends when the token is absent/empty."""

    kind: Literal["cursor"]
    cursor_path: str = Field("next_cursor", description="body path of the next token")
    cursor_param: str = Field("cursor", description="query parameter that takes it")


class OffsetPaginator(_Paged):
    """``offset``/``limit``; ends at the total, or on an empty or short page when there is none."""

    kind: Literal["offset"]
    offset_param: str = Field("offset", description="query parameter of the offset (starts at 0)")
    total_path: str | None = Field("total", description="body path of the total number of records")


class PageNumberPaginator(_Paged):
    """``page=1, 2, ...``; ends on an empty page, a short page, the total pages or the total."""

    kind: Literal["page_number"]
    page_param: str = Field("page", description="query parameter of the page number")
    first_page: int = Field(1, ge=0, description="number of the first page")
    stop_on_short_page: bool = Field(
        True, description="a page with fewer records than the page size is the last one"
    )
    total_pages_path: str | None = Field(None, description="body path of the number of pages")


class LinkHeaderPaginator(_Paged):
    """RFC 8288 ``Link: <url>; rel="next"``; ends when there is no next link."""

    kind: Literal["link_header"]


class JsonLinkPaginator(_Paged):
    """The next page's URL at a body path; ends when it is absent or null."""

    kind: Literal["json_link"]
    next_path: str = Field("links.next", description="body path of the next page's URL")


class IdCursorPaginator(_Paged):
    """``after_id=<last id>`` while the body says there is more (the events feed)."""

    kind: Literal["id_cursor"]
    has_more_path: str = Field("has_more", description="body path of the more-to-come flag")
    next_id_path: str = Field("next_after_id", description="body path of the next position")
    after_param: str = Field("after_id", description="query parameter that takes it")


PaginatorModel = Annotated[
    Union[  # noqa: UP007
        NoPaginator,
        CursorPaginator,
        OffsetPaginator,
        PageNumberPaginator,
        LinkHeaderPaginator,
        JsonLinkPaginator,
        IdCursorPaginator,
    ],
    Field(discriminator="kind"),
]


# --- incremental ----------------------------------------------------------------------------------
class Updated(Strict):
    """Records carry a cursor that grows with every change (a last-changed timestamp, a version
    number): ask for those changed since the last run (minus the lag window), merge on the primary key,
    newest version wins, exact versions already loaded are skipped."""

    mode: Literal["updated"]
    cursor: str = Field("updated_at", description="field that grows with every update")
    cursor_type: CursorType | None = Field(
        None,
        description="what the cursor holds: `timestamp` (a `ts` field, ISO 8601 in any offset), "
        "`epoch_s` / `epoch_ms` (an `int` or `float` field of epoch seconds / milliseconds), `integer` "
        "(an `int` field, e.g. a version number), `string` (a `str` field that sorts in order); "
        "default: from the field's type (`ts`, `int`, `str`)",
    )
    since_param: str | None = Field(
        "updated_since",
        description="query parameter of the lower bound (`null`: the API takes none; every run reads "
        "everything and the loader drops what it already has)",
    )
    since_format: SinceFormat = Field(
        "raw",
        description="how the bound is written: `raw` (as the records carry the cursor; a timestamp as "
        "ISO 8601 UTC with microseconds and `Z`), `iso8601`, `iso8601_seconds`, `date` (YYYY-MM-DD), "
        "`epoch_s`, `epoch_ms` (time cursors are floored to that precision); integer and string "
        "cursors: `raw` only",
    )
    lag: float | None = Field(
        None,
        ge=0,
        description="the window re-read on every run for late commits: seconds for a time cursor "
        "(default: the service's `lag_seconds` knob), cursor units for an integer one (default 0); a "
        "string cursor has none (its last value is re-read, inclusively)",
    )


class AppendId(Strict):
    """Append-only records with a strictly increasing integer primary key: exactly once, never merged."""

    mode: Literal["append_id"]
    after_param: str = Field("after_id", description="query parameter of the last loaded id")


class Snapshot(Strict):
    """No cursor: re-read every run, upserted only when the content changed (a record removed at the
    source stays in raw)."""

    mode: Literal["snapshot"]


IncrementalModel = Annotated[Union[Updated, AppendId, Snapshot], Field(discriminator="mode")]  # noqa: UP007


def _shorthand(tag: str) -> Any:
    """``auth: none`` for ``auth: {kind: none}`` (and the same for ``paginator`` and ``incremental``)."""

    def expand(value: Any) -> Any:
        return {tag: value} if isinstance(value, str) else value

    return expand


def _field_type_problem(spec: Any, where: str) -> tuple[str, str] | None:
    """(sub-path, problem) of the first invalid field type in ``spec``, or None."""
    if isinstance(spec, str):
        return None if spec in _SCALARS else (where, f"{spec!r} is not a field type")
    if isinstance(spec, dict):
        if not spec:
            return where, "an empty object has no fields"
        for name, sub in spec.items():
            if not isinstance(name, str) or not re.match(NAME, name):
                return f"{where}.{name}".lstrip("."), "field names are lower-case identifiers"
            if found := _field_type_problem(sub, f"{where}.{name}".lstrip(".")):
                return found
        return None
    if isinstance(spec, list):
        if len(spec) != 1 or not isinstance(spec[0], dict):
            return where, "a list field is a one-item list holding the element's object"
        return _field_type_problem(spec[0], where)
    return where, f"{type(spec).__name__} is not a field type"


FIELD_TYPES = "int, str, bool, ts, float, a mapping (nested object) or [mapping] (list of objects)"


class SoftDeleteModel(Strict):
    """Records that say they are deleted (a flag, a status, a deletion time): after each load their
    rows are removed from the endpoint's table and its child tables, like erased keys of a deletions
    feed. A record that comes back without the mark is loaded again."""

    field: str = Field(description="the marking field (a scalar; `a.b` for one inside an object)")
    equals: str | int | bool | None = Field(
        None, description="the value that means deleted (default `true`, for a `bool` field)"
    )
    not_null: bool = Field(False, description="any value means deleted (e.g. a `deleted_at` timestamp)")


# which cursor types each declared field type can hold, and the default one
_CURSOR_FIELDS = {
    "timestamp": ("ts",),
    "epoch_s": ("int", "float"),
    "epoch_ms": ("int", "float"),
    "integer": ("int",),
    "string": ("str",),
}
_DEFAULT_CURSOR = {"ts": "timestamp", "int": "integer", "str": "string"}


def _field_at(fields: dict[str, Any], path: str) -> Any:
    """The declared type at a dotted path of ``fields`` (None when there is none)."""
    spec: Any = fields
    for part in path.split("."):
        if not isinstance(spec, dict) or part not in spec:
            return None
        spec = spec[part]
    return spec


class EndpointModel(Strict):
    """One collection endpoint; it becomes table ``raw_<service>.<name>``."""

    name: str = Field(pattern=NAME, description="table name (lower-case identifier)")
    path: str = Field(pattern=r"^/", description="path on the base URL, e.g. `/v1/orders`")
    description: str | None = Field(None, description="free text")
    primary_key: str | list[str] = Field(
        description="field that identifies a record, or a list of fields (a composite key)"
    )
    records: str = Field(
        "data", description="body path of the record list: `$` = the body is the list, else `data`, `a.b`"
    )
    error_path: str | None = Field(
        "error",
        description="body path of an error envelope: a 200 with a value there (not null, empty or "
        "false) is an error, retried like a 5xx and then failed with its code and message "
        "(`null`: never)",
    )
    paginator: PaginatorModel = Field(description="how to walk the pages (`kind`, or a mapping)")
    incremental: IncrementalModel = Field(description="how runs continue (`mode`, or a mapping)")
    fields: dict[str, Any] = Field(
        description=f"declared fields and types: {FIELD_TYPES}; the contract checked on every page"
    )
    children: dict[str, str] = Field(
        default_factory=dict,
        description="list-of-objects field -> key of its elements; becomes table `<name>__<field>`",
    )
    loose: list[str] = Field(
        default_factory=list, description="object fields whose keys vary by record (absent = NULL)"
    )
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="extra query parameters of every first request"
    )
    page_size: int | None = Field(None, ge=1, description="overrides `[sources.<name>] page_size`")
    soft_delete: SoftDeleteModel | None = Field(
        None, description="a field/value that marks a record deleted (`field`, or a mapping)"
    )

    _expand_paginator = field_validator("paginator", mode="before")(_shorthand("kind"))
    _expand_incremental = field_validator("incremental", mode="before")(_shorthand("mode"))
    _expand_soft_delete = field_validator("soft_delete", mode="before")(_shorthand("field"))

    @property
    def keys(self) -> list[str]:
        """The key fields (one, or the parts of a composite key)."""
        return [self.primary_key] if isinstance(self.primary_key, str) else list(self.primary_key)

    @property
    def cursor_type(self) -> str | None:
        """The ``updated`` cursor's type, given or derived from the field (None when there is none)."""
        inc = self.incremental
        if not isinstance(inc, Updated):
            return None
        declared = self.fields.get(inc.cursor)
        return inc.cursor_type or (_DEFAULT_CURSOR.get(declared) if isinstance(declared, str) else None)

    @field_validator("fields")
    @classmethod
    def _types(cls, fields: dict[str, Any]) -> dict[str, Any]:
        if found := _field_type_problem(fields, ""):
            where, problem = found
            raise PydanticCustomError(
                "field_type",
                "{problem}; allowed: {allowed}",
                {
                    "problem": problem,
                    "allowed": FIELD_TYPES,
                    "subpath": where,
                },
            )
        return fields

    @model_validator(mode="after")
    def _consistent(self) -> EndpointModel:
        def refuse(key: str, problem: str) -> None:
            raise PydanticCustomError("inconsistent", "{problem}", {"problem": problem, "subpath": key})

        keys = self.keys
        if not keys or len(set(keys)) != len(keys):
            refuse("primary_key", "a composite key is a list of different fields, at least one")
        for key in keys:
            if key not in self.fields:
                refuse("primary_key", f"{key!r} is not one of the fields")
            if not isinstance(self.fields[key], str) or self.fields[key] == "float":
                refuse(
                    "primary_key", f"{key!r} is a {self.fields[key]!r} field; a key is int, str, bool or ts"
                )
        inc = self.incremental
        if isinstance(inc, Updated):
            self._check_cursor(inc, refuse)
        if isinstance(inc, AppendId) and (len(keys) != 1 or self.fields[keys[0]] != "int"):
            refuse("primary_key", "append_id needs one int primary key (strictly increasing)")
        if self.soft_delete is not None:
            self._check_soft_delete(self.soft_delete, refuse)
        for child, key in self.children.items():
            spec = self.fields.get(child)
            if not (isinstance(spec, list) and key in spec[0]):
                refuse(
                    f"children.{child}",
                    f"needs a list-of-objects field {child!r} whose elements have {key!r}",
                )
        for name in self.loose:
            if not isinstance(self.fields.get(name), dict):
                refuse("loose", f"{name!r} is not an object field")
        return self

    def _check_cursor(self, inc: Updated, refuse: Any) -> None:
        declared = self.fields.get(inc.cursor)
        if declared is None:
            refuse("incremental.cursor", f"{inc.cursor!r} is not one of the fields")
        kind = self.cursor_type
        if kind is None:
            refuse(
                "incremental.cursor_type",
                f"{inc.cursor!r} is a {declared!r} field: set cursor_type (epoch_s or epoch_ms for a number "
                "of epoch seconds or milliseconds)",
            )
        if declared not in _CURSOR_FIELDS[kind]:
            allowed = " or ".join(_CURSOR_FIELDS[kind])
            refuse(
                "incremental.cursor" if inc.cursor_type is None else "incremental.cursor_type",
                f"cursor_type {kind} needs a field of type {allowed}; {inc.cursor!r} is {declared!r}",
            )
        if kind not in TIME_CURSORS and inc.since_format != "raw":
            refuse("incremental.since_format", f"a {kind} cursor is sent as it is: since_format raw")
        if kind == "string" and inc.lag:
            refuse("incremental.lag", "a string cursor has no distance to lag by: leave lag out (or 0)")
        if kind == "integer" and inc.lag is not None and inc.lag != int(inc.lag):
            refuse("incremental.lag", "an integer cursor lags by a whole number of units")

    def _check_soft_delete(self, soft: SoftDeleteModel, refuse: Any) -> None:
        declared = _field_at(self.fields, soft.field)
        if not isinstance(declared, str):
            refuse(
                "soft_delete.field", f"{soft.field!r} is not a scalar field (dotted path for a nested one)"
            )
        if soft.not_null and soft.equals is not None:
            refuse("soft_delete", "give either equals or not_null, not both")
        if not soft.not_null:
            value = True if soft.equals is None else soft.equals
            fits = {"bool": bool, "int": int, "str": str}.get(declared)
            if fits is None or type(value) is not fits:
                refuse(
                    "soft_delete.equals",
                    f"{value!r} cannot be a value of the {declared!r} field {soft.field!r}"
                    + (
                        "; use not_null: true for a field that is only set on deletion"
                        if declared in ("ts", "float")
                        else ""
                    ),
                )


class HardDeletes(Strict):
    """A deletions feed: after each load, rows whose key the feed lists are removed from ``tables``."""

    feed: str = Field(description="the endpoint listing deleted keys (its primary key)")
    tables: list[str] = Field(
        description="tables to delete them from (`<endpoint>` or `<endpoint>__<child>`)"
    )


class SourceModel(Strict):
    """One service: ``sources/<name>.yml``, loaded into dataset ``raw_<name>``. Base URL and secrets are
    not here: ``[sources.<name>]`` in .dlt/config.toml and .dlt/secrets.toml, or ``SOURCES__<NAME>__*``."""

    description: str | None = Field(None, description="free text")
    embedded: bool = Field(False, description="one of the shop's own services (started by the local fleet)")
    auth: AuthModel = Field(description="how requests authenticate (`kind`, or a mapping)")
    endpoints: list[EndpointModel] = Field(min_length=1, description="the collections to load")
    hard_deletes: HardDeletes | None = Field(None, description="remove erased records after each load")
    openapi: str | None = Field(
        None,
        description="path on the base URL (or a URL) of the service's OpenAPI document: fetched before every"
        " load and compared with `fields`; a field removed, renamed or retyped fails the service before any"
        " data request, an added one is reported (extract/docdrift.py)",
    )

    _expand_auth = field_validator("auth", mode="before")(_shorthand("kind"))

    @model_validator(mode="after")
    def _consistent(self) -> SourceModel:
        names = [ep.name for ep in self.endpoints]
        if len(set(names)) != len(names):
            raise PydanticCustomError("inconsistent", "endpoint names repeat: {names}", {"names": names})
        if self.hard_deletes:
            if self.hard_deletes.feed not in names:
                raise PydanticCustomError(
                    "inconsistent",
                    "'{feed}' is not an endpoint",
                    {"feed": self.hard_deletes.feed, "subpath": "hard_deletes.feed"},
                )
            columns = _table_columns(self.endpoints)
            feed_keys = next(ep.keys for ep in self.endpoints if ep.name == self.hard_deletes.feed)
            for table in self.hard_deletes.tables:
                if table not in columns:
                    raise PydanticCustomError(
                        "inconsistent",
                        "'{table}' is not a table of this source; tables: {tables}",
                        {
                            "table": table,
                            "tables": ", ".join(sorted(columns)),
                            "subpath": "hard_deletes.tables",
                        },
                    )
                lacking = [k for k in feed_keys if k not in columns[table]]
                if lacking:
                    raise PydanticCustomError(
                        "inconsistent",
                        "'{table}' has no column {lacking} of the feed's key",
                        {"table": table, "lacking": ", ".join(lacking), "subpath": "hard_deletes.tables"},
                    )
        return self


def _table_columns(endpoints: list[EndpointModel]) -> dict[str, set[str]]:
    """Each table of the source and its top-level columns (a child table carries its parent's key)."""
    tables: dict[str, set[str]] = {}
    for ep in endpoints:
        tables[ep.name] = set(ep.fields) - set(ep.children)
        for child in ep.children:
            tables[f"{ep.name}__{child}"] = set(ep.keys) | set(ep.fields[child][0])
    return tables


# --- from the model to the engine's objects -------------------------------------------------------
def _paging(p: Any) -> Paging:
    knobs = {k: v for k, v in p.model_dump().items() if k != "kind"}
    return Paging(**knobs)


def _endpoint(m: EndpointModel) -> Endpoint:
    inc = m.incremental
    mode, cursor, param = inc.mode, None, "updated_since"
    extra: dict[str, Any] = {}
    if isinstance(inc, Updated):
        cursor, param = inc.cursor, inc.since_param
        extra = {"cursor_type": m.cursor_type, "since_format": inc.since_format, "lag": inc.lag}
    elif isinstance(inc, AppendId):
        cursor, param = m.keys[0], inc.after_param
    soft = m.soft_delete
    return Endpoint(
        name=m.name,
        path=m.path,
        fields=m.fields,
        primary_key=m.primary_key if isinstance(m.primary_key, str) else tuple(m.primary_key),
        paginator=m.paginator.kind,
        mode=mode,
        cursor=cursor,
        since_param=param,
        children=dict(m.children),
        loose=tuple(m.loose),
        params=dict(m.params),
        records=m.records,
        paging=_paging(m.paginator),
        page_size=m.page_size,
        soft_delete=SoftDelete(soft.field, True if soft.equals is None else soft.equals, soft.not_null)
        if soft
        else None,
        error_path=m.error_path,
        **extra,
    )


def to_service(name: str, m: SourceModel, where: str) -> Service:
    """The engine's ``Service`` for a validated file."""
    a = m.auth
    auth = AuthSpec(
        kind=a.kind,
        header=getattr(a, "header", "X-API-Key"),
        query_param=getattr(a, "query_param", None),
        token_url=getattr(a, "token_url", "/oauth/token"),
        scopes=tuple(getattr(a, "scopes", ())),
    )
    hd = m.hard_deletes
    return Service(
        name=name,
        auth=a.kind,
        auth_spec=auth,
        endpoints=tuple(_endpoint(ep) for ep in m.endpoints),
        embedded=m.embedded,
        source_file=where,
        hard_delete_feed=hd.feed if hd else None,
        hard_delete_tables=tuple(hd.tables) if hd else (),
        openapi=m.openapi,
    )


# --- errors ---------------------------------------------------------------------------------------
def _unwrap(tp: Any) -> Any:
    """The type under ``Annotated[...]`` and ``X | None``."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType) and type(None) in get_args(tp):
            rest = [a for a in get_args(tp) if a is not type(None)]
            tp = rest[0] if len(rest) == 1 else Union[tuple(rest)]  # noqa: UP007
        else:
            return tp


def _tag_of(member: type[BaseModel]) -> tuple[str, str]:
    for key in ("kind", "mode"):
        if key in member.model_fields:
            return key, get_args(member.model_fields[key].annotation)[0]
    raise TypeError(member)


def _walk(loc: tuple[Any, ...]) -> tuple[str, type[BaseModel] | None]:
    """The printable key path of ``loc`` and the model that holds its last key (for "allowed keys")."""
    parts: list[str] = []
    node: Any = SourceModel
    holder: type[BaseModel] | None = None
    for item in loc:
        node = _unwrap(node)
        origin = get_origin(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            holder = node
            parts.append(f".{item}")
            field = node.model_fields.get(str(item))
            node = field.annotation if field else None
        elif origin is Union:
            members = {_tag_of(m)[1]: m for m in get_args(node)}
            node = members.get(item)
            if node is None:  # not a tag: a plain union value
                parts.append(f".{item}")
        elif origin is list:
            parts.append(f"[{item}]")
            node = get_args(node)[0]
        elif origin is dict:
            parts.append(f".{item}")
            node = get_args(node)[1]
        else:
            parts.append(f"[{item}]" if isinstance(item, int) else f".{item}")
            node = None
    return "".join(parts).lstrip("."), holder


def _problem(err: dict[str, Any], name: str) -> str:
    loc = tuple(err["loc"])
    kind, ctx = err["type"], err.get("ctx") or {}
    path, holder = _walk(loc)
    if kind == "extra_forbidden":
        key = str(loc[-1])
        if key in SECRET_KEYS:
            return (
                f"{path}: secrets never go in a source file; put {key} in .dlt/secrets.toml"
                f" [sources.{name}] or the environment (SOURCES__{name.upper()}__{key.upper()})"
            )
        allowed = ", ".join(holder.model_fields) if holder else "none"
        return f"{path}: unknown key {key!r}; allowed: {allowed}"
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = str(ctx.get("discriminator", "'kind'")).strip("'")
        got = f"{ctx['tag']!r} is not allowed" if kind == "union_tag_invalid" else "required key missing"
        return f"{path}.{tag}: {got}; allowed: {ctx.get('expected_tags')}"
    if kind == "missing":
        return f"{path}: required key missing"
    if ctx.get("subpath"):  # our own checks name the key inside the model they ran on
        path = f"{path}.{ctx['subpath']}".lstrip(".")
    got = err.get("input")
    shown = f" (got {got!r})" if isinstance(got, str | int | float | bool) and len(repr(got)) < 60 else ""
    return f"{path or '(top level)'}: {err['msg']}{shown}"


def display(path: Path) -> str:
    """``sources/orders.yml`` for a file under the repo, else the path as given."""
    try:
        return str(path.resolve().relative_to(settings.repo_root()))
    except ValueError:
        return str(path)


def parse(text: str, where: str) -> SourceModel:
    """Validate a source file's text; ``SourceFileError`` names ``where``, each key path and the fix."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark else ""
        raise SourceFileError(f"{where}: not valid YAML: {line}{getattr(exc, 'problem', exc)}") from None
    if not isinstance(doc, dict):
        raise SourceFileError(
            f"{where}: expected a mapping of keys (auth, endpoints, ...), got {type(doc).__name__}"
        )
    try:
        return SourceModel.model_validate(doc)
    except ValidationError as exc:
        problems = [_problem(e, Path(where).stem) for e in exc.errors()]
        more = f"; and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
        raise SourceFileError(
            f"{where}: " + "; ".join(problems[:MAX_PROBLEMS]) + more + " (every key: docs/sources.md)"
        ) from None


def load_file(path: Path) -> Service:
    """The service of one file; its name is the file's stem."""
    where = display(path)
    if not re.match(NAME, path.stem):
        raise SourceFileError(f"{where}: the file name is the service name: lower-case letters, digits, _")
    try:
        text = path.read_text()
    except OSError as exc:
        raise SourceFileError(f"{where}: cannot read it ({exc.strerror})") from None
    return to_service(path.stem, parse(text, where), where)


def load_dir(folder: Path) -> dict[str, Service]:
    """Every ``*.yml`` / ``*.yaml`` of ``folder``, by name (sorted by file name)."""
    if not folder.is_dir():
        raise SourceFileError(
            f"{display(folder)}: no such folder of source files (SHOP_SOURCES_DIR points at it?)"
        )
    files = sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])
    services: dict[str, Service] = {}
    for path in files:
        service = load_file(path)
        if service.name in services:
            raise SourceFileError(f"{display(path)}: a second file for service {service.name!r}")
        services[service.name] = service
    return services
