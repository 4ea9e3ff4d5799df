"""A draft source file: the values ``init`` chose and, for each one it guessed, why.

Both ways in (an OpenAPI document, a sample answer) describe records as ``openapi.DocField`` trees, so
the rules that turn a record shape into the vocabulary live here once: field types, the primary key,
child tables and their keys, objects whose keys vary (``loose``), and the names conventions give to
paging parameters and body fields. A note of ``None`` means the value is stated by the document;
every other value carries the reason it was chosen, which ``render`` writes as a ``GUESS`` comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from extract.openapi import SCALAR_KINDS, DocField

# conventional names, lower-case, most common first
LIMIT_PARAMS = (
    "limit",
    "per_page",
    "page_size",
    "pagesize",
    "size",
    "_limit",
    "_size",
    "count",
    "max_results",
    "top",
)
PAGE_PARAMS = ("page", "_page", "page_number", "pagenumber", "p")
OFFSET_PARAMS = ("offset", "_start", "skip", "start")
CURSOR_PARAMS = ("cursor", "page_token", "pagetoken", "next_token", "continuation", "token", "_next", "after")
AFTER_ID_PARAMS = ("after_id", "since_id", "min_id", "starting_after", "after")
SINCE_WORDS = ("since", "after", "from", "gte", "min", "start")
TOTAL_NAMES = (
    "total",
    "total_count",
    "totalcount",
    "count",
    "total_results",
    "totalresults",
    "total_items",
    "totalitems",
    "filtered_table_rows_count",
    "num_results",
)
TOTAL_PAGES_NAMES = (
    "total_pages",
    "totalpages",
    "pages",
    "page_count",
    "pagecount",
    "last_page",
    "num_pages",
)
NEXT_URL_NAMES = (
    "next",
    "next_url",
    "nexturl",
    "next_page_url",
    "next_link",
    "nextlink",
    "next_page",
    "href",
)
CURSOR_NAMES = (
    "next_cursor",
    "nextcursor",
    "cursor",
    "next_token",
    "nexttoken",
    "next_page_token",
    "nextpagetoken",
    "continuation",
    "continuation_token",
    "next",
)
HAS_MORE_NAMES = ("has_more", "hasmore", "more", "has_next", "hasnext")
UPDATED_NAMES = (
    "updated_at",
    "modified_at",
    "changed_at",
    "last_modified",
    "updated",
    "modified",
    "updatedat",
    "modifiedat",
    "date_modified",
    "last_updated",
)
TOTAL_HEADERS = ("x-total-count", "x-total", "total-count", "x-total-results", "total-records")
DEFAULT_PAGE_SIZE = 5000  # the loader's default page_size ([sources.extract] page_size)


@dataclass
class Guess:
    """A chosen value; ``note`` says why when it was guessed (None: stated by the source)."""

    value: Any
    note: str | None = None


@dataclass
class EndpointDraft:
    """One endpoint of the draft (the keys of ``sourcefile.EndpointModel``)."""

    name: str
    path: str
    description: str | None
    records: Guess
    # filled in after the fields are known (the key, paging and cursor are guessed from them)
    primary_key: Guess = field(default_factory=lambda: Guess(None))
    paginator: Guess = field(default_factory=lambda: Guess(None))
    incremental: Guess = field(default_factory=lambda: Guess(None))
    fields: dict[str, Any] = field(default_factory=dict)
    field_notes: dict[str, str] = field(default_factory=dict)  # field -> why its type is a guess
    descriptions: dict[str, str] = field(default_factory=dict)  # column (a__b for nested) -> text
    children: Guess = field(default_factory=lambda: Guess({}))
    loose: Guess = field(default_factory=lambda: Guess([]))
    params: Guess = field(default_factory=lambda: Guess({}))
    page_size: Guess = field(default_factory=lambda: Guess(None))
    left_out: list[str] = field(default_factory=list)  # fields the vocabulary cannot hold, and why


@dataclass
class SourceDraft:
    """The whole draft: what ``render`` turns into ``sources/<name>.yml``."""

    name: str
    origin: str  # how it was made (the command), for the file's header
    description: str | None
    base_url: str | None
    auth: Guess
    endpoints: list[EndpointDraft]
    openapi: Guess = field(default_factory=lambda: Guess(None))
    hard_deletes: Guess | None = None  # written commented out: deleting rows is never guessed live
    auth_secrets: tuple[str, ...] = ()


def key(name: str) -> str:
    """A lower-case identifier for a field or table name from the API (``createdAt`` -> ``created_at``)."""
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    out = re.sub(r"[^a-z0-9_]+", "_", snake.lower()).strip("_")
    return out if out and out[0].isalpha() else f"f_{out}".rstrip("_")


def norm(name: str) -> str:
    """A name compared with the conventional lists: lower-case, no ``-``, ``.`` or camel humps."""
    return name.lower().replace("-", "_")


def singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 3:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def first_named(names: list[str], wanted: tuple[str, ...]) -> str | None:
    """The first of ``names`` whose normalised form is in ``wanted`` (in ``wanted``'s order)."""
    by_norm = {norm(n): n for n in names}
    for w in wanted:
        if w in by_norm:
            return by_norm[w]
    return None


def field_specs(record: DocField, draft: EndpointDraft, prefix: str = "", top: bool = True) -> dict[str, Any]:
    """The vocabulary's field specs of a record; what cannot be held goes to ``draft.left_out``.

    Field names are kept as the API sends them when they are lower-case identifiers; a name that is
    not (``createdAt``) is left out with a note, since the loader matches JSON keys by name."""
    out: dict[str, Any] = {}
    for name, f in record.fields.items():
        where = f"{prefix}{name}"
        if key(name) != name:
            draft.left_out.append(f"{where}: its name is not a lower-case identifier (the vocabulary's rule)")
            continue
        column = where.replace(".", "__")
        if f.description:
            draft.descriptions[column] = " ".join(str(f.description).split())
        if f.kind in SCALAR_KINDS:
            out[name] = f.kind
        elif f.kind == "null":
            out[name] = "str"
            if top:
                draft.field_notes[name] = "null in every sample record: type unknown"
        elif f.kind == "object":
            sub = field_specs(f, draft, where + ".", top=False)
            if sub:
                out[name] = sub
            else:
                draft.left_out.append(f"{where}: an object with no field the vocabulary can hold")
        elif f.kind == "list" and top:
            sub = field_specs(DocField("object", f.fields), draft, where + ".", top=False)
            if sub:
                out[name] = [sub]
            else:
                draft.left_out.append(f"{where}: a list of objects with no field the vocabulary can hold")
        elif f.kind == "list":
            draft.left_out.append(
                f"{where}: a list inside an object (only top-level lists become child tables)"
            )
        elif f.kind == "scalars":
            draft.left_out.append(
                f"{where}: a list of scalars (not in the vocabulary; reported as a new field on load)"
            )
        else:
            draft.left_out.append(f"{where}: free-form or of several types (no single type to declare)")
    return out


def primary_key(name: str, fields: dict[str, Any], required: frozenset[str]) -> Guess:
    """``id``, else ``<singular name>_id``, else the first required ``*_id`` field, else the first
    ``*_id`` / ``*id`` / ``*key`` scalar, else the first scalar."""
    scalars = [f for f, spec in fields.items() if isinstance(spec, str)]
    own = f"{singular(name)}_id"
    for candidate, why in (("id", "the field named id"), (own, f"the field named {own}")):
        if candidate in scalars:
            return Guess(candidate, why)
    ids = [f for f in scalars if f.endswith("_id") or f.endswith("id") or f.endswith("key") or f == "uuid"]
    req = [f for f in ids if f in required]
    if req:
        return Guess(req[0], "the first required *_id field")
    if ids:
        return Guess(ids[0], "the first *_id field")
    return Guess(scalars[0] if scalars else next(iter(fields)), "no id-like field: the first field; CHECK")


def child_key(list_name: str, element: dict[str, Any], parent_key: str) -> str | None:
    """The key of a child list's elements: ``id``, ``<singular>_id``, else its first ``*_id`` scalar
    that is not the parent's key; None when it has none (the list is then left out)."""
    scalars = [f for f, spec in element.items() if isinstance(spec, str)]
    for candidate in ("id", f"{singular(list_name)}_id"):
        if candidate in scalars:
            return candidate
    ids = [f for f in scalars if f.endswith("_id") and f != parent_key]
    return ids[0] if ids else None


def split_children(draft: EndpointDraft) -> None:
    """Turn every list-of-objects field into a child table (its key guessed), or leave it out."""
    children: dict[str, str] = {}
    for name, spec in list(draft.fields.items()):
        if isinstance(spec, list):
            found = child_key(name, spec[0], draft.primary_key.value)
            if found is None:
                del draft.fields[name]
                draft.left_out.append(
                    f"{name}: a list of objects without an id-like field to key a child table"
                )
            else:
                children[name] = found
    if children:
        draft.children = Guess(
            children, "list-of-objects field(s) as child tables, keyed by their *_id field"
        )


def loose_objects(record: DocField, fields: dict[str, Any]) -> list[str]:
    """Object fields whose own fields are all optional: their keys may vary by record."""
    return [
        name
        for name, f in record.fields.items()
        if f.kind == "object" and isinstance(fields.get(name), dict) and not (f.required & set(f.fields))
    ]


def cursor_field(fields: dict[str, Any], hint: str = "") -> str | None:
    """The ``ts`` field a since-parameter filters on: the one ``hint`` (the parameter name without its
    since-word) names, else a conventional last-changed name, else the only ``ts`` field."""
    ts = [f for f, spec in fields.items() if spec == "ts"]
    stem = hint
    for word in SINCE_WORDS:
        stem = re.sub(rf"(^|_){word}$", "", stem)
    stem = stem.strip("_")
    if stem:
        named = [f for f in ts if f == stem or f.startswith(stem + "_") or f.startswith(stem)]
        if named:
            return named[0]
    if found := first_named(ts, UPDATED_NAMES):
        return found
    return ts[0] if len(ts) == 1 else None


def hard_delete_guess(endpoints: list[EndpointDraft]) -> Guess | None:
    """An endpoint named like a deletions feed whose key is another endpoint's key: a hard-delete
    feed for that endpoint and its children (written commented out)."""
    for feed in endpoints:
        if "delet" not in feed.name and "erase" not in feed.name and "tombstone" not in feed.name:
            continue
        targets = [
            ep for ep in endpoints if ep is not feed and ep.primary_key.value == feed.primary_key.value
        ]
        if targets:
            tables = [t for ep in targets for t in [ep.name, *(f"{ep.name}__{c}" for c in ep.children.value)]]
            return Guess(
                {"feed": feed.name, "tables": tables},
                f"{feed.name} looks like a feed of deleted {feed.primary_key.value}s: uncomment to remove"
                " them from these tables after each load",
            )
    return None
