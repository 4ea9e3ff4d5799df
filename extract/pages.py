"""Turn one HTTP response body into Arrow, entirely in C++ (no Python dict per record).

The shop's services answer with one JSON object per page, ``{"data": [...], <paging fields>}``, on one line,
so ``pyarrow.json`` reads it as a one-row table: the ``data`` column is a list of structs (the records), the
other columns are the paging metadata. This is several times faster than ``orjson`` + ``Table.from_pylist``
(bench/tuning-history.md) and keeps memory bounded by the page. The records may sit at any dotted path
(``results``, ``payload.items``: the endpoint's ``records``), or be the body itself (``$``, a bare JSON
array): such a body is wrapped as ``{"<key>": [...]}`` (one copy of the bytes) and read the same way. A bare
array where an object was expected (or the reverse) is a ``PageShape`` error that says which ``records`` to
set, not "malformed JSON", and is not retried: the same URL sends the same shape.

A body that does not parse (truncated), that carries an error envelope (a value at the endpoint's
``error_path``, default ``error``), or that lacks the data key raises ``BadPage`` - a 200 is never
mistaken for an empty page. A body that does not parse and is
not JSON by its ``Content-Type`` (an HTML login or error page from a proxy, say) is named as such,
with the content type, rather than as "malformed JSON".

The body arrives as the one buffer ``extract.transfer`` filled; Arrow reads it in place
(``pa.py_buffer``), so a page is held once as bytes and once as Arrow, never copied on the way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.json as pj

from extract.errors import BadPage, PageShape
from extract.spec import BODY

DATA_KEY = "data"
ERROR_KEY = "error"  # the default error envelope path
_WRAP = "__records__"  # the key a bare array body is wrapped under
Body = bytes | bytearray


@dataclass
class Page:
    """One parsed page: its records (types as inferred from JSON) and its paging metadata."""

    records: pa.Table
    meta: dict[str, Any]
    headers: dict[str, str]
    size_bytes: int


def _is_error(value: Any) -> bool:
    """A value at the error path that reports an error: anything but null, false, ``""``, [] or {}."""
    return value is not None and value is not False and value not in ("", [], {})


def describe_error(value: Any, path: str) -> str:
    """``error envelope code='x' message='y'`` (``... at 'meta.error': ...`` for another path)."""
    where = "" if path == ERROR_KEY else f" at {path!r}:"
    if isinstance(value, list) and len(value) == 1:
        value = value[0]  # one error in a list of errors (``errors: [{...}]``)
    if isinstance(value, dict):
        code = value.get("code", value.get("type"))
        message = value.get("message", value.get("detail", value.get("title")))
        return f"error envelope{where} code={code!r} message={str(message)[:200]!r}"
    return f"error envelope{where} {str(value)[:200]!r}"


def _envelope_message(body: Body, path: str | None = ERROR_KEY) -> str | None:
    """The error envelope at ``path`` (its code and message), if the body carries one."""
    if not path:
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return describe_error(value, path) if _is_error(value) else None


def _error_in(table: pa.Table, path: str | None) -> str | None:
    """The error envelope at ``path`` of a parsed one-row body (read from Arrow: the records are not
    turned into Python for this), if any."""
    if not path:
        return None
    parts = path.split(".")
    if parts[0] not in table.column_names:
        return None
    column = table.column(parts[0]).combine_chunks()
    for key in parts[1:]:
        if not pa.types.is_struct(column.type) or column.type.get_field_index(key) < 0:
            return None
        column = column.field(key)
    value = column[0].as_py()
    return describe_error(value, path) if _is_error(value) else None


def media_type(headers: dict[str, str] | None) -> str:
    """The ``Content-Type`` without parameters, lower-case (``""`` when absent)."""
    value = next((v for k, v in (headers or {}).items() if k.lower() == "content-type"), "")
    return value.split(";", 1)[0].strip().lower()


def is_json_type(media: str) -> bool:
    """``application/json`` and the ``+json`` types (an absent type is not known to be anything else)."""
    return media in ("", "application/json") or media.endswith("+json")


def not_json(body: Body, headers: dict[str, str] | None) -> str | None:
    """ "not JSON: a text/html body (46 bytes)" when the body is declared, or looks like, something else."""
    media = media_type(headers)
    head = bytes(body[:64]).lstrip().lower()
    looks_html = head.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))
    if not is_json_type(media):
        kind = media
    elif looks_html:
        kind = f"HTML-looking (declared {media})" if media else "HTML-looking (no Content-Type)"
    else:
        return None
    return f"not JSON: the service answered a {kind} body ({len(body)} bytes)"


def _malformed(body: Body, headers: dict[str, str] | None, why: str) -> BadPage:
    return BadPage(not_json(body, headers) or f"malformed JSON body ({len(body)} bytes; truncated?): {why}")


def _first_byte(body: Body) -> bytes:
    return bytes(body[:64]).lstrip()[:1]


def _records_at(table: pa.Table, path: list[str], shown: str) -> tuple[pa.Array, dict[str, Any]]:
    """The list column at ``path`` of the one-row ``table`` and the rest of the body (paging metadata)."""
    names = table.column_names
    if path[0] not in names:
        raise BadPage(f"body has no {shown!r} key (keys: {', '.join(names)[:200]})")
    meta = {name: table.column(name)[0].as_py() for name in names if name != path[0]}
    column = table.column(path[0]).combine_chunks()
    holder = meta
    for depth, key in enumerate(path[1:], start=1):
        parent = ".".join(path[:depth])
        if not pa.types.is_struct(column.type) or column.null_count:
            raise BadPage(f"{parent!r} is not an object but {column.type}, so there is no {shown!r}")
        fields = [column.type.field(i).name for i in range(column.type.num_fields)]
        if key not in fields:
            raise BadPage(f"body has no {shown!r} key (keys of {parent!r}: {', '.join(fields)[:200]})")
        rest: dict[str, Any] = {f: column.field(f)[0].as_py() for f in fields if f != key}
        holder[path[depth - 1]] = rest
        holder = rest
        column = column.field(key)
    return column, meta


def parse_page(
    body: Body,
    headers: dict[str, str] | None = None,
    records: str = DATA_KEY,
    error_path: str | None = ERROR_KEY,
) -> Page:
    """Parse a page body whose records are at the dotted path ``records`` (``$``: the body is the list);
    raise ``BadPage`` when it is not a complete page with a record list, or carries an error envelope at
    ``error_path``."""
    if not body or body.isspace():
        raise BadPage("empty body (truncated response?)")
    bare = _first_byte(body) == b"["
    if records == BODY and not bare and _first_byte(body) == b"{":
        try:
            orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _malformed(body, headers, str(exc)) from None
        if envelope := _envelope_message(body, error_path):  # an error answer: retried like any other
            raise BadPage(envelope)
        raise PageShape(
            "the body is a JSON object, not the array of records that records: $ expects;"
            " set records to the path of the list in it (e.g. data, results, items)"
        )
    if records != BODY and bare:
        raise PageShape(
            f"the body is a JSON array, not an object with the records at {records!r}: set records: $"
        )
    if b"\n" in body:  # pyarrow reads one JSON object per line: re-serialise a pretty-printed body
        try:
            body = orjson.dumps(orjson.loads(body))
        except orjson.JSONDecodeError as exc:
            raise _malformed(body, headers, str(exc)) from None
    size = len(body)
    path = records.split(".")
    if records == BODY:
        body = b'{"' + _WRAP.encode() + b'":' + bytes(body) + b"}"
        path = [_WRAP]
    opts = pj.ReadOptions(block_size=len(body) + 64, use_threads=False)
    try:
        table = pj.read_json(pa.BufferReader(pa.py_buffer(body)), read_options=opts)
    except pa.ArrowInvalid as exc:
        msg = _envelope_message(body, error_path)
        if msg:
            raise BadPage(msg) from None
        raise _malformed(body, headers, str(exc)[:200]) from None
    if table.num_rows != 1:
        raise BadPage(f"expected one JSON object per page, got {table.num_rows}")
    if envelope := _error_in(table, error_path):
        raise BadPage(envelope)
    data, meta = _records_at(table, path, records)
    if not pa.types.is_list(data.type):
        raise BadPage(f"{records!r} is not a list but {data.type}")
    values = data.flatten()
    if len(values) == 0 or not pa.types.is_struct(values.type):
        if len(values):
            raise BadPage(f"{records!r} items are not objects but {values.type}")
        table = pa.table({})
    else:
        table = pa.Table.from_struct_array(values)
    return Page(records=table, meta=meta, headers=dict(headers or {}), size_bytes=size)
