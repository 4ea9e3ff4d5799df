"""Read an OpenAPI document the way a source file sees a service: its collection endpoints, their
query parameters and response headers, and the record shape at a records path, in the field-type
vocabulary of ``extract.spec`` (int, str, bool, float, ts, objects, lists of objects).

Shared by ``python -m extract init`` (which guesses a source file from it) and the drift check before
each load (``extract.docdrift``, which compares it with the file), so both read a document the same
way. Only what the vocabulary can hold is mapped; anything else is kept as a kind the callers can
name (``any`` for a free-form object or an ambiguous union, ``scalars`` for a list of scalars) rather
than guessed into a wrong type.

Versions: OpenAPI 3.0 (``nullable``) and 3.1 (``type: [x, "null"]``) and Swagger 2.0's
``definitions`` / ``produces`` shapes, local ``$ref``s only (``#/...``); a reference cycle stops at
``any``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import yaml

# the vocabulary's scalars; plus "object", "list" (of objects), "scalars" (a list of scalars), "any"
SCALAR_KINDS = ("int", "str", "bool", "float", "ts")
RECORD_LIST_NAMES = ("data", "results", "items", "records", "rows", "entries", "values", "objects", "hits")
MAX_DEPTH = 12


class DocumentError(ValueError):
    """Not an OpenAPI document this reader understands (the message says what is missing)."""


@dataclass(frozen=True)
class DocField:
    """One documented value: its kind, and for an object (or a list of objects) the element's fields."""

    kind: str
    fields: dict[str, DocField] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    description: str | None = None
    nullable: bool = False
    fmt: str | None = None
    maximum: float | None = None

    @property
    def is_record_list(self) -> bool:
        return self.kind == "list" and bool(self.fields)


@dataclass(frozen=True)
class DocParam:
    """A query parameter of an operation."""

    name: str
    kind: str
    fmt: str | None
    description: str | None
    maximum: float | None


@dataclass
class DocEndpoint:
    """A GET operation whose 200 JSON answer holds a list of records."""

    path: str
    summary: str | None
    params: dict[str, DocParam]
    headers: set[str]  # response header names of the 200, lower-case
    body: DocField  # the whole 200 body
    records: str | None = None  # "$" or a dotted path of the record list; None: not a collection
    security: list[str] | None = None  # scheme names; None: the document does not say

    @property
    def record(self) -> DocField | None:
        """The fields of one record at ``records``."""
        if self.records is None:
            return None
        return records_at(self.body, self.records)


def parse_document(text: str | bytes, where: str) -> dict[str, Any]:
    """A document from JSON or YAML text; ``DocumentError`` when it is neither or not an OpenAPI one."""
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            raise DocumentError(f"{where}: neither JSON nor YAML") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
        raise DocumentError(f"{where}: not an OpenAPI document (no `paths` object)")
    return doc


class Resolver:
    """Local ``$ref`` resolution with a depth bound (a cyclic schema becomes ``any``)."""

    def __init__(self, doc: dict[str, Any]):
        self.doc = doc

    def deref(self, node: Any) -> Any:
        seen = 0
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if not ref.startswith("#/") or seen > MAX_DEPTH:
                return {}
            target: Any = self.doc
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, dict) else None
            node = target if isinstance(target, dict) else {}
            seen += 1
        return node

    def field(self, schema: Any, depth: int = 0) -> DocField:
        """The ``DocField`` of a JSON schema."""
        s = self.deref(schema)
        if not isinstance(s, dict) or depth > MAX_DEPTH:
            return DocField("any")
        desc = s.get("description") or s.get("title")
        nullable = bool(s.get("nullable"))
        if "allOf" in s:
            parts = [self.field(p, depth + 1) for p in s["allOf"]]
            objects = [p for p in parts if p.kind == "object"]
            if objects and len(objects) == len(parts):
                merged: dict[str, DocField] = {}
                required: set[str] = set(s.get("required") or ())
                for p in objects:
                    merged.update(p.fields)
                    required |= p.required
                return DocField("object", merged, frozenset(required), desc, nullable)
            return parts[0] if len(parts) == 1 else DocField("any", description=desc)
        for key in ("anyOf", "oneOf"):
            if key in s:
                options = [self.deref(o) for o in s[key]]
                kept = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
                nullable = nullable or len(kept) < len(options)
                fields = [self.field(o, depth + 1) for o in kept]
                if len(fields) == 1:
                    return _with(fields[0], nullable=True if nullable else fields[0].nullable, desc=desc)
                kinds = {f.kind for f in fields}
                if kinds == {"int", "float"}:
                    return DocField("float", description=desc, nullable=nullable)
                return DocField("any", description=desc, nullable=nullable)
        typ = s.get("type")
        if isinstance(typ, list):
            nullable = nullable or "null" in typ
            rest = [t for t in typ if t != "null"]
            typ = rest[0] if len(rest) == 1 else None
        fmt = s.get("format")
        maximum = s.get("maximum") if isinstance(s.get("maximum"), int | float) else None
        if typ == "integer":
            return DocField("int", description=desc, nullable=nullable, fmt=fmt, maximum=maximum)
        if typ == "number":
            return DocField("float", description=desc, nullable=nullable, fmt=fmt, maximum=maximum)
        if typ == "boolean":
            return DocField("bool", description=desc, nullable=nullable)
        if typ == "string":
            kind = "ts" if fmt in ("date-time", "date") else "str"
            return DocField(kind, description=desc, nullable=nullable, fmt=fmt)
        if typ == "array":
            items = self.field(s.get("items") or {}, depth + 1)
            if items.kind == "object" and items.fields:
                return DocField("list", items.fields, items.required, desc, nullable)
            return DocField("scalars", description=desc, nullable=nullable)
        props = s.get("properties")
        if typ == "object" or isinstance(props, dict):
            if not props:
                return DocField("any", description=desc, nullable=nullable)  # free-form: keys unknown
            fields = {str(k): self.field(v, depth + 1) for k, v in props.items()}
            return DocField("object", fields, frozenset(s.get("required") or ()), desc, nullable)
        return DocField("any", description=desc, nullable=nullable)


def _with(f: DocField, nullable: bool, desc: str | None) -> DocField:
    return DocField(f.kind, f.fields, f.required, f.description or desc, nullable, f.fmt, f.maximum)


def records_at(body: DocField, path: str) -> DocField | None:
    """The record object at ``path`` of a body (``$``: the body is the list), or None."""
    node = body
    if path != "$":
        for part in path.split("."):
            if node.kind != "object" or part not in node.fields:
                return None
            node = node.fields[part]
    if not node.is_record_list:
        return None
    return DocField("object", node.fields, node.required, node.description)


def find_records(body: DocField, name: str = "") -> list[str]:
    """Dotted paths of the lists of objects in a body (``$`` for the body itself), best guess first:
    a conventional name (data, results, ...) or the endpoint's own name, then the others, shallow first."""
    if body.is_record_list:
        return ["$"]
    found: list[tuple[int, int, str]] = []

    def walk(node: DocField, prefix: str, depth: int) -> None:
        if node.kind != "object" or depth > 2:
            return
        for key, sub in node.fields.items():
            path = f"{prefix}{key}"
            if sub.is_record_list:
                rank = 0 if key in RECORD_LIST_NAMES or key == name else 1
                found.append((rank, depth, path))
            else:
                walk(sub, path + ".", depth + 1)

    walk(body, "", 0)
    return [p for _, _, p in sorted(found, key=lambda t: (t[0], t[1]))]


def scalar_paths(
    body: DocField, records: str | None, prefix: str = "", depth: int = 0
) -> dict[str, DocField]:
    """Every scalar of a body outside its record list, by dotted path (the paging metadata)."""
    out: dict[str, DocField] = {}
    if body.kind != "object" or depth > 3:
        return out
    for key, sub in body.fields.items():
        path = f"{prefix}{key}"
        if path == records:
            continue
        if sub.kind in SCALAR_KINDS:
            out[path] = sub
        elif sub.kind == "object":
            out.update(scalar_paths(sub, records, path + ".", depth + 1))
    return out


def base_path(doc: dict[str, Any]) -> str:
    """The path prefix the document's first server (or Swagger 2's ``basePath``) puts before its paths."""
    from urllib.parse import urlsplit

    servers = doc.get("servers")
    if isinstance(servers, list) and servers and isinstance(servers[0], dict):
        url = str(servers[0].get("url") or "")
        return urlsplit(url).path.rstrip("/")
    return str(doc.get("basePath") or "").rstrip("/")


def _response_schema(resp: Any, resolver: Resolver) -> Any:
    resp = resolver.deref(resp)
    if not isinstance(resp, dict):
        return None
    content = resp.get("content")
    if isinstance(content, dict):  # OpenAPI 3
        for media, body in content.items():
            if media.split(";")[0].strip() in ("application/json", "*/*") or media.endswith("+json"):
                return (body or {}).get("schema")
        return None
    return resp.get("schema")  # Swagger 2


def operation(doc: dict[str, Any], path: str) -> tuple[str, dict[str, Any]] | None:
    """The document's GET operation answering ``path`` (as a source file writes it: the server's base
    path included), or None."""
    paths = doc.get("paths") or {}
    prefix = base_path(doc)
    for candidate in (path, path.removeprefix(prefix) if prefix and path.startswith(prefix) else None):
        if (
            candidate
            and isinstance(paths.get(candidate), dict)
            and isinstance(paths[candidate].get("get"), dict)
        ):
            return candidate, paths[candidate]
    return None


def describe(doc: dict[str, Any], path: str, name: str = "") -> DocEndpoint | None:
    """The GET operation at ``path`` as a ``DocEndpoint`` (``records``: the best guess), or None."""
    found = operation(doc, path)
    if found is None:
        return None
    _, item = found
    resolver = Resolver(doc)
    op = item["get"]
    params: dict[str, DocParam] = {}
    for raw in [*(item.get("parameters") or []), *(op.get("parameters") or [])]:
        p = resolver.deref(raw)
        if not isinstance(p, dict) or p.get("in") != "query" or not p.get("name"):
            continue
        f = resolver.field(p.get("schema") or p)  # Swagger 2 puts the type on the parameter itself
        params[str(p["name"])] = DocParam(str(p["name"]), f.kind, f.fmt, p.get("description"), f.maximum)
    responses = op.get("responses") or {}
    ok = resolver.deref(responses.get("200") or responses.get(200) or {})
    headers = {str(h).lower() for h in (ok.get("headers") or {})} if isinstance(ok, dict) else set()
    body = resolver.field(_response_schema(ok, resolver) or {})
    security = op.get("security", doc.get("security"))
    names = None if security is None else [str(k) for req in security if isinstance(req, dict) for k in req]
    candidates = find_records(body, name)
    return DocEndpoint(
        path=path,
        summary=op.get("summary") or op.get("description"),
        params=params,
        headers=headers,
        body=body,
        records=candidates[0] if candidates else None,
        security=names,
    )


def collections(doc: dict[str, Any]) -> list[DocEndpoint]:
    """Every GET operation without path parameters whose 200 JSON answer holds a list of records."""
    prefix = base_path(doc)
    out = []
    for path, item in (doc.get("paths") or {}).items():
        if "{" in path or not isinstance(item, dict) or not isinstance(item.get("get"), dict):
            continue
        described = describe(doc, prefix + path, endpoint_name(prefix + path))
        if described is not None and described.records is not None:
            out.append(described)
    return out


def endpoint_name(path: str) -> str:
    """``/v1/tickets`` -> ``tickets``; ``/db/tickets.json`` -> ``tickets`` (the last word that is not a
    version), as a lower-case identifier."""
    import re

    parts = [p for p in path.strip("/").split("/") if p and not re.fullmatch(r"v\d+(\.\d+)*|api", p)]
    last = (parts[-1] if parts else "items").rsplit(".", 1)[0]
    name = re.sub(r"[^a-z0-9_]+", "_", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", last).lower()).strip("_")
    if not name or not name[0].isalpha():
        name = f"t_{name}".rstrip("_")
    return name


def security_scheme(doc: dict[str, Any], names: list[str] | None) -> tuple[str, dict[str, Any]] | None:
    """The first security scheme of ``names`` (None: of the document's) it defines (OpenAPI 3 or
    Swagger 2); None when the operation needs none (``security: []``)."""
    schemes = (doc.get("components") or {}).get("securitySchemes") or doc.get("securityDefinitions") or {}
    resolver = Resolver(doc)
    for name in list(schemes) if names is None else names:
        scheme = resolver.deref(schemes.get(name))
        if isinstance(scheme, dict) and scheme:
            return name, scheme
    return None
