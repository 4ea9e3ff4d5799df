"""Turn one HTTP response body into Arrow, entirely in C++ (no Python dict per record).

The services answer with one JSON object per page, ``{"data": [...], <paging fields>}``, on one line,
so ``pyarrow.json`` reads it as a one-row table: the ``data`` column is a list of structs (the
records), the other columns are the paging metadata. This is ~5x faster than ``orjson`` +
``Table.from_pylist`` and keeps memory bounded by the page.

A body that does not parse (truncated), that carries an ``error`` envelope, or that lacks the data
key raises ``BadPage`` - a 200 is never mistaken for an empty page. A body that does not parse and is
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

from extract.errors import BadPage

DATA_KEY = "data"
Body = bytes | bytearray


@dataclass
class Page:
    """One parsed page: its records (types as inferred from JSON) and its paging metadata."""

    records: pa.Table
    meta: dict[str, Any]
    headers: dict[str, str]
    size_bytes: int


def _envelope_message(body: Body) -> str | None:
    """The ``error`` envelope's code and message, if the body is one."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict) and "error" in doc:
        err = doc["error"]
        if isinstance(err, dict):
            return f"error envelope code={err.get('code')!r} message={err.get('message')!r}"
        return f"error envelope {str(err)[:200]!r}"
    return None


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


def parse_page(body: Body, headers: dict[str, str] | None = None) -> Page:
    """Parse a page body; raise ``BadPage`` when it is not a complete page with a data list."""
    if not body or body.isspace():
        raise BadPage("empty body (truncated response?)")
    if b"\n" in body:  # pyarrow reads one JSON object per line: re-serialise a pretty-printed body
        try:
            body = orjson.dumps(orjson.loads(body))
        except orjson.JSONDecodeError as exc:
            raise _malformed(body, headers, str(exc)) from None
    opts = pj.ReadOptions(block_size=len(body) + 64, use_threads=False)
    try:
        table = pj.read_json(pa.BufferReader(pa.py_buffer(body)), read_options=opts)
    except pa.ArrowInvalid as exc:
        msg = _envelope_message(body)
        if msg:
            raise BadPage(msg) from None
        raise _malformed(body, headers, str(exc)[:200]) from None
    if table.num_rows != 1:
        raise BadPage(f"expected one JSON object per page, got {table.num_rows}")
    names = table.column_names
    if "error" in names:
        raise BadPage(_envelope_message(body) or "error envelope")
    if DATA_KEY not in names:
        raise BadPage(f"body has no {DATA_KEY!r} key (keys: {', '.join(names)[:200]})")
    meta = {name: table.column(name)[0].as_py() for name in names if name != DATA_KEY}
    data = table.column(DATA_KEY).combine_chunks()
    if not pa.types.is_list(data.type):
        raise BadPage(f"{DATA_KEY!r} is not a list but {data.type}")
    values = data.flatten()
    if len(values) == 0 or not pa.types.is_struct(values.type):
        if len(values):
            raise BadPage(f"{DATA_KEY!r} items are not objects but {values.type}")
        records = pa.table({})
    else:
        records = pa.Table.from_struct_array(values)
    return Page(records=records, meta=meta, headers=dict(headers or {}), size_bytes=len(body))
