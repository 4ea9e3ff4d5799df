"""An OpenAPI document -> a draft source file (``draft.SourceDraft``).

What the document states is taken as is: the paths, the record fields and their types, the
security scheme. What it cannot state is guessed from conventions and each guess says why: which
list in the 200 body holds the records, the primary key, the pagination style and its keys (from
the query parameters, the 200 body's other fields and its documented headers), and the incremental
mode (a ``date-time`` parameter filters on a ``ts`` field; an integer ``after_id`` on an integer key;
else a snapshot).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from extract import openapi
from extract.openapi import DocEndpoint, DocField
from extract.scaffold.draft import (
    AFTER_ID_PARAMS,
    CURSOR_NAMES,
    CURSOR_PARAMS,
    DEFAULT_PAGE_SIZE,
    HAS_MORE_NAMES,
    LIMIT_PARAMS,
    NEXT_URL_NAMES,
    OFFSET_PARAMS,
    PAGE_PARAMS,
    TOTAL_HEADERS,
    TOTAL_NAMES,
    TOTAL_PAGES_NAMES,
    EndpointDraft,
    Guess,
    SourceDraft,
    cursor_field,
    field_specs,
    first_named,
    hard_delete_guess,
    loose_objects,
    norm,
    primary_key,
    split_children,
)

# words of a string parameter that make it a lower bound on a timestamp (``after`` is usually a token)
BOUND_WORDS = {"since", "gte", "updated", "modified", "changed"}


def _leaf(path: str) -> str:
    return norm(path.rsplit(".", 1)[-1])


def _body_path(meta: dict[str, DocField], names: tuple[str, ...], kinds: tuple[str, ...]) -> str | None:
    """The dotted path of the first body scalar (of ``kinds``) whose last part is in ``names``."""
    for wanted in names:
        for path, f in meta.items():
            if _leaf(path) == wanted and f.kind in kinds:
                return path
    return None


def paginator(ep: DocEndpoint) -> Guess:
    """The pagination style and its keys from the parameters, the body's metadata and its headers."""
    params = list(ep.params)
    meta = openapi.scalar_paths(ep.body, ep.records)
    limit = first_named(params, LIMIT_PARAMS)
    total_path = _body_path(meta, TOTAL_NAMES, ("int",))
    total_header = next((h for h in TOTAL_HEADERS if h in ep.headers), None)
    base: dict[str, Any] = {"limit_param": limit}
    totals: dict[str, Any] = {}
    if total_header:
        totals["total_header"] = (
            total_header.title() if not total_header.startswith("x-") else "X-" + total_header[2:].title()
        )
    elif total_path:
        totals["total_path"] = total_path
    size = f"page size {limit}" if limit else "no page-size parameter"
    found_total = f", total at {totals.get('total_header') or totals.get('total_path')}" if totals else ""
    if "link" in ep.headers:
        return Guess(
            {"kind": "link_header", **base, **totals},
            f"the 200 answer documents a Link header; {size}{found_total}",
        )
    has_more = _body_path(meta, HAS_MORE_NAMES, ("bool",))
    after = first_named(params, AFTER_ID_PARAMS)
    next_id = next(
        (p for p, f in meta.items() if f.kind == "int" and "next" in norm(p) and "id" in norm(p)), None
    )
    if has_more and after and next_id and ep.params[after].kind == "int":
        return Guess(
            {
                "kind": "id_cursor",
                "has_more_path": has_more,
                "next_id_path": next_id,
                "after_param": after,
                **base,
            },
            f"body {has_more} + {next_id} and an integer parameter {after}; {size}",
        )
    token = _body_path(meta, CURSOR_NAMES, ("str",))
    token_param = first_named(params, CURSOR_PARAMS)
    next_url = _body_path(meta, NEXT_URL_NAMES, ("str",))
    if token and token_param and not (next_url == token and token_param not in ("cursor", "page_token")):
        return Guess(
            {"kind": "cursor", "cursor_path": token, "cursor_param": token_param, **base, **totals},
            f"body {token} and parameter {token_param}; {size}{found_total}",
        )
    if next_url:
        return Guess(
            {"kind": "json_link", "next_path": next_url, **base, **totals},
            f"body {next_url} looks like the next page's URL; {size}{found_total}",
        )
    offset = first_named(params, OFFSET_PARAMS)
    if offset:
        return Guess(
            {
                "kind": "offset",
                "offset_param": offset,
                **base,
                "total_path": totals.get("total_path"),
                **({"total_header": totals["total_header"]} if "total_header" in totals else {}),
            },
            f"parameter {offset}; {size}{found_total or ', no total: ends on a short page'}",
        )
    page = first_named(params, PAGE_PARAMS)
    if page:
        pages = _body_path(meta, TOTAL_PAGES_NAMES, ("int",))
        extra = {"total_pages_path": pages} if pages else {}
        return Guess(
            {"kind": "page_number", "page_param": page, **base, **extra, **totals},
            f"parameter {page}; {size}{found_total}",
        )
    return Guess({"kind": "none", **base}, "no paging parameter or next-page field found: one request")


def incremental(ep: DocEndpoint, fields: dict[str, Any], key: str) -> Guess:
    """``updated`` when a date-time parameter filters on a ``ts`` field, ``append_id`` when an integer
    after-id parameter pages an integer key, else ``snapshot``."""
    dated = [n for n, p in ep.params.items() if p.kind == "ts"]
    named = [
        n
        for n, p in ep.params.items()
        if p.kind == "str" and set(norm(n).split("_")) & BOUND_WORDS and "id" not in norm(n).split("_")
    ]
    for name in dated + named:
        cursor = cursor_field(fields, norm(name))
        if cursor:
            p = ep.params[name]
            return Guess(
                {"mode": "updated", "cursor": cursor, "since_param": name},
                f"parameter {name} ({p.fmt or p.kind}) looks like a lower bound on {cursor}",
            )
    after = first_named(list(ep.params), AFTER_ID_PARAMS)
    if after and ep.params[after].kind == "int" and fields.get(key) == "int":
        return Guess(
            {"mode": "append_id", "after_param": after},
            f"integer parameter {after} pages the integer key {key}: append-only records",
        )
    return Guess("snapshot", "no since/after parameter: the whole list is read every run")


def page_size(ep: DocEndpoint, limit: str | None) -> Guess:
    """The limit parameter's documented maximum, when it is below the loader's default page size."""
    top = ep.params[limit].maximum if limit and limit in ep.params else None
    if top is not None and 0 < top < DEFAULT_PAGE_SIZE:
        return Guess(int(top), f"the maximum of parameter {limit}")
    return Guess(None)


def _records_note(ep: DocEndpoint, name: str) -> str | None:
    """Why ``records`` is what it is, when the body holds more than one list of objects."""
    found = openapi.find_records(ep.body, name)
    if len(found) > 1:
        return f"the 200 body has several lists of objects ({', '.join(found)}): the first by name"
    return None


def endpoint_draft(ep: DocEndpoint, name: str) -> EndpointDraft | None:
    record = ep.record
    if record is None:
        return None
    draft = EndpointDraft(
        name=name,
        path=ep.path,
        description=" ".join(str(ep.summary).split()) if ep.summary else None,
        records=Guess(ep.records, _records_note(ep, name)),
    )
    draft.fields = field_specs(record, draft)
    if not draft.fields:
        return None
    draft.primary_key = primary_key(name, draft.fields, record.required)
    split_children(draft)
    loose = loose_objects(record, draft.fields)
    if loose:
        draft.loose = Guess(loose, "objects whose fields are all optional: their keys may vary by record")
    draft.paginator = paginator(ep)
    draft.incremental = incremental(ep, draft.fields, draft.primary_key.value)
    draft.page_size = page_size(ep, draft.paginator.value.get("limit_param"))
    return draft


def auth(doc: dict[str, Any], endpoints: list[DocEndpoint]) -> tuple[Guess, tuple[str, ...]]:
    """The auth of the first endpoint's security scheme, and the secrets it needs."""
    found = openapi.security_scheme(doc, endpoints[0].security if endpoints else None)
    if found is None:
        return Guess("none", None), ()
    name, s = found
    typ, where = s.get("type"), f"securitySchemes.{name}"
    if typ == "apiKey":
        spec: dict[str, Any] = {"kind": "api_key"}
        if s.get("in") == "query":
            spec["query_param"] = s.get("name")
        else:
            spec["header"] = s.get("name") or "X-API-Key"
        return Guess(spec, f"{where}: an API key in the {s.get('in', 'header')}"), ("api_key",)
    scheme = str(s.get("scheme") or "").lower()
    if (typ == "http" and scheme == "bearer") or (typ == "oauth2" and not _client_credentials(s)):
        return Guess("bearer", f"{where}: a bearer token"), ("token",)
    if typ in ("http", "basic"):
        return Guess("basic", f"{where}: HTTP basic"), ("username", "password")
    if typ == "oauth2":
        flow = _client_credentials(s) or {}
        spec = {"kind": "oauth2", "token_url": str(flow.get("tokenUrl") or "/oauth/token")}
        scopes = sorted((flow.get("scopes") or {}).keys())
        note = f"{where}: OAuth2 client credentials"
        if scopes:
            note += f"; scopes offered: {', '.join(scopes)} (add the ones needed under scopes)"
        return Guess(spec, note), ("client_id", "client_secret")
    return Guess("none", f"{where} is of type {typ}, which the vocabulary has no kind for; CHECK"), ()


def _client_credentials(scheme: dict[str, Any]) -> dict[str, Any] | None:
    flows = scheme.get("flows") or {}
    flow = flows.get("clientCredentials")
    if flow is None and scheme.get("flow") == "application":  # Swagger 2
        flow = {"tokenUrl": scheme.get("tokenUrl"), "scopes": scheme.get("scopes")}
    return flow


def from_document(
    doc: dict[str, Any], name: str, origin: str, doc_url: str | None, base_url: str | None
) -> SourceDraft:
    """The draft of a whole document; ``doc_url`` (the document's URL, when it was fetched) becomes
    the ``openapi`` key when it is on the service's own origin."""
    endpoints = openapi.collections(doc)
    drafts: list[EndpointDraft] = []
    used: set[str] = set()
    for ep in endpoints:
        label = openapi.endpoint_name(ep.path)
        while label in used:
            label += "_2"
        if (d := endpoint_draft(ep, label)) is not None:
            used.add(label)
            drafts.append(d)
    if not drafts:
        raise openapi.DocumentError(
            f"{origin}: no GET operation without path parameters answers a list of records in JSON;"
            " nothing to load (try --sample URL with one answer of the service)"
        )
    auth_guess, secrets = auth(doc, endpoints)
    info = doc.get("info") or {}
    base = base_url or _server_url(doc, doc_url)
    draft = SourceDraft(
        name=name,
        origin=origin,
        description=" ".join(str(info.get("title") or "").split()) or None,
        base_url=base,
        auth=auth_guess,
        endpoints=drafts,
        auth_secrets=secrets,
    )
    if doc_url and base and urlsplit(doc_url)[:2] == urlsplit(base)[:2]:
        draft.openapi = Guess(urlsplit(doc_url).path or "/")
    draft.hard_deletes = hard_delete_guess(drafts)
    return draft


def _server_url(doc: dict[str, Any], doc_url: str | None) -> str | None:
    """The service's origin: the first server's, else the document URL's."""
    servers = doc.get("servers")
    if isinstance(servers, list) and servers and isinstance(servers[0], dict):
        parts = urlsplit(str(servers[0].get("url") or ""))
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}"
    if doc_url and urlsplit(doc_url).scheme in ("http", "https"):
        parts = urlsplit(doc_url)
        return f"{parts.scheme}://{parts.netloc}"
    return None
