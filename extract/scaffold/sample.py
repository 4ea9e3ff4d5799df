"""One answer of a service (``init --sample URL``, no OpenAPI document) -> a draft endpoint.

Everything here is a guess and says so: the record list (the body itself when it is an array, else
the list of objects under a conventional key), the field types from the values of every sample
record (a string that reads as an ISO 8601 date or time is a ``ts``; a field null in every record is
a ``str`` to check), the pagination from what the answer shows (a next URL in the body, an RFC 8288
``Link`` header, a token, the sample URL's page or offset parameter; a total in a header such as
``X-Total-Count`` or in the body). A sample cannot show which parameter filters by time, so the
endpoint starts as a ``snapshot`` and the comment names the field to use once that is known.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
from requests.utils import parse_header_links

from extract.openapi import RECORD_LIST_NAMES, DocField, endpoint_name
from extract.scaffold.draft import (
    CURSOR_NAMES,
    CURSOR_PARAMS,
    LIMIT_PARAMS,
    NEXT_URL_NAMES,
    OFFSET_PARAMS,
    PAGE_PARAMS,
    TOTAL_HEADERS,
    TOTAL_NAMES,
    UPDATED_NAMES,
    EndpointDraft,
    Guess,
    field_specs,
    first_named,
    norm,
    primary_key,
    split_children,
)

ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


class SampleError(ValueError):
    """An answer that holds no list of records (the message says what it holds)."""


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "ts" if ISO_TIME.match(value) else "str"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "null"


def infer(values: list[Any]) -> DocField:
    """The ``DocField`` that every one of ``values`` (one field across the sample records) fits."""
    present = [v for v in values if v is not None]
    if not present:
        return DocField("null")
    kinds = {_kind(v) for v in present}
    if kinds == {"int", "float"}:
        return DocField("float")
    if kinds == {"ts", "str"}:
        return DocField("str")
    if len(kinds) > 1:
        return DocField("any")
    kind = kinds.pop()
    if kind == "object":
        names: dict[str, None] = {}
        for v in present:
            names.update(dict.fromkeys(v))
        fields = {n: infer([v.get(n) for v in present if n in v]) for n in names}
        required = frozenset(n for n in names if all(n in v for v in present))
        return DocField("object", fields, required)
    if kind == "array":
        items = [i for v in present for i in v]
        if not items:
            return DocField("any")  # empty in every record: nothing to learn the element from
        element = infer(items)
        if element.kind == "object":
            return DocField("list", element.fields, element.required)
        return DocField("scalars")
    return DocField(kind)


def find_records(body: Any, name: str) -> tuple[str, list[dict[str, Any]]]:
    """The records path and the records of a sample body."""
    if isinstance(body, list):
        if body and not all(isinstance(r, dict) for r in body):
            raise SampleError("the body is a JSON array, but not of objects (records are objects)")
        return "$", body
    if not isinstance(body, dict):
        raise SampleError(f"the body is a JSON {type(body).__name__}, not an array or object of records")
    found: list[tuple[int, int, str, list]] = []

    def walk(node: dict[str, Any], prefix: str, depth: int) -> None:
        for k, v in node.items():
            if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
                rank = 0 if k in RECORD_LIST_NAMES or k == name else 1
                found.append((rank, depth, prefix + k, v))
            elif isinstance(v, dict) and depth < 2:
                walk(v, f"{prefix}{k}.", depth + 1)

    walk(body, "", 0)
    if not found:
        keys = ", ".join(list(body)[:12])
        raise SampleError(
            f"no non-empty list of objects in the body (keys: {keys}); sample a URL that answers records"
        )
    found.sort(key=lambda t: (t[0], t[1]))
    return found[0][2], found[0][3]


def _scalars(body: Any, records: str, prefix: str = "", depth: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(body, dict) or depth > 2:
        return out
    for k, v in body.items():
        path = prefix + k
        if path == records:
            continue
        if isinstance(v, dict):
            out.update(_scalars(v, records, path + ".", depth + 1))
        elif not isinstance(v, list):
            out[path] = v
    return out


def _leaf(path: str) -> str:
    return norm(path.rsplit(".", 1)[-1])


def _looks_like_url(value: Any) -> bool:
    return isinstance(value, str) and (
        value.startswith(("http://", "https://", "/")) or value.startswith("?")
    )


def paginator(
    url: str, headers: dict[str, str], body: Any, records: str, count: int
) -> tuple[Guess, dict[str, Any]]:
    """The pagination style the answer shows, and the sample URL's other query parameters (kept as
    ``params``: the first request sends them)."""
    query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    lower = {k.lower(): k for k in headers}
    meta = _scalars(body, records)
    limit = first_named(list(query), LIMIT_PARAMS)
    base: dict[str, Any] = {"limit_param": limit}
    totals: dict[str, Any] = {}
    header = next((lower[h] for h in TOTAL_HEADERS if h in lower), None)
    body_total = next(
        (p for t in TOTAL_NAMES for p, v in meta.items() if _leaf(p) == t and isinstance(v, int)), None
    )
    if header:
        totals["total_header"] = header
    elif body_total:
        totals["total_path"] = body_total
    seen = f"; total at {totals.get('total_header') or totals.get('total_path')}" if totals else ""
    size = f"page size {limit} (the sample URL's)" if limit else "no page-size parameter in the sample URL"
    keep = {k: _typed(v) for k, v in query.items() if k != limit}
    next_url = next(
        (p for n in NEXT_URL_NAMES for p, v in meta.items() if _leaf(p) == n and _looks_like_url(v)), None
    )
    if next_url:
        return Guess(
            {"kind": "json_link", "next_path": next_url, **base, **totals},
            f"body {next_url} held the next page's URL; {size}{seen}",
        ), keep
    link = headers.get(lower.get("link", ""), "")
    if any("next" in (x.get("rel") or "").split() for x in parse_header_links(link) if link):
        return Guess(
            {"kind": "link_header", **base, **totals},
            f"the answer had a Link rel=next header; {size}{seen}",
        ), keep
    token = next(
        (
            p
            for n in CURSOR_NAMES
            for p, v in meta.items()
            if _leaf(p) == n and isinstance(v, str | int) and v != ""
        ),
        None,
    )
    if token:
        param = first_named(list(query), CURSOR_PARAMS)
        keep.pop(param, None)
        note = f"body {token} held a token; parameter {param or 'cursor'}"
        if not param:
            note += " is a GUESS: set cursor_param to the parameter the API takes it back in"
        return Guess(
            {"kind": "cursor", "cursor_path": token, "cursor_param": param or "cursor", **base, **totals},
            f"{note}; {size}{seen}",
        ), keep
    offset = first_named(list(query), OFFSET_PARAMS)
    if offset:
        keep.pop(offset, None)
        return Guess(
            {
                "kind": "offset",
                "offset_param": offset,
                **base,
                "total_path": totals.get("total_path"),
                **({"total_header": header} if header else {}),
            },
            f"the sample URL's parameter {offset}; {size}{seen}",
        ), keep
    page = first_named(list(query), PAGE_PARAMS)
    if page:
        first = keep.pop(page)
        spec = {"kind": "page_number", "page_param": page, **base, **totals}
        if first == 0:
            spec["first_page"] = 0
        return Guess(spec, f"the sample URL's parameter {page}; {size}{seen}"), keep
    note = "the answer named no next page: one request"
    if limit and count >= int(_typed(query[limit]) or 0) > 0:
        note += " (CHECK: the sample was a full page)"
    return Guess({"kind": "none", **base}, note), keep


def _typed(value: str) -> Any:
    """A query value as YAML should hold it: an integer stays an integer."""
    return int(value) if re.fullmatch(r"-?\d{1,18}", value) else value


def endpoint_draft(url: str, status_body: bytes, headers: dict[str, str]) -> EndpointDraft:
    """The draft of the endpoint a sample URL answered."""
    try:
        body = orjson.loads(status_body)
    except orjson.JSONDecodeError:
        raise SampleError(f"the answer is not JSON ({len(status_body)} bytes)") from None
    path = urlsplit(url).path or "/"
    name = endpoint_name(path)
    records, rows = find_records(body, name)
    record = infer(rows)
    draft = EndpointDraft(
        name=name,
        path=path,
        description=None,
        records=Guess(
            records, "the body is the array" if records == "$" else "the list of objects in the body"
        ),
    )
    draft.fields = field_specs(record, draft)
    if not draft.fields:
        raise SampleError("the records have no field the vocabulary can hold")
    key = primary_key(name, draft.fields, record.required)
    values = [r.get(key.value) for r in rows]
    if len(set(map(repr, values))) != len(values) or None in values:
        key.note = f"{key.note}; CHECK: not unique (or null) across the {len(rows)} sample records"
    draft.primary_key = key
    split_children(draft)
    loose = [
        n
        for n, f in record.fields.items()
        if f.kind == "object" and isinstance(draft.fields.get(n), dict) and f.required != frozenset(f.fields)
    ]
    if loose:
        draft.loose = Guess(loose, "objects whose keys differ between the sample records")
    draft.paginator, params = paginator(url, headers, body, records, len(rows))
    if params:
        draft.params = Guess(params, "the sample URL's other query parameters, sent with the first request")
    ts = [f for f, spec in draft.fields.items() if spec == "ts"]
    cursor = first_named(ts, UPDATED_NAMES) or (ts[0] if len(ts) == 1 else None)
    note = "a sample cannot show a since-parameter: the whole list is read every run"
    if cursor:
        note += (
            f". If the API filters on {cursor}, use incremental: {{mode: updated, cursor: {cursor},"
            " since_param: <that parameter>}"
        )
    draft.incremental = Guess("snapshot", note)
    draft.field_notes["*"] = f"types inferred from the values of {len(rows)} sample record(s)"
    return draft
