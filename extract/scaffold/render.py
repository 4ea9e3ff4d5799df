"""A draft -> the text of ``sources/<name>.yml``, every guess in a ``# GUESS:`` comment above its key.

Written by hand rather than by a YAML dumper so the comments sit where they belong and the file
reads like the shop's own; scalars are quoted by the dumper (a value such as ``yes`` or ``1.0``
keeps its type). The text is validated with the loader's own schema before anyone writes it
(``cli``), so a file ``init`` writes always loads.
"""

from __future__ import annotations

import textwrap
from typing import Any

import yaml

from extract.scaffold.draft import EndpointDraft, Guess, SourceDraft

WIDTH = 110
GUESS = "GUESS"


def scalar(value: Any) -> str:
    """One YAML scalar (quoted when plain text would change its type)."""
    return yaml.safe_dump([value], default_flow_style=True, width=10_000).strip()[1:-1]


def _comment(indent: int, text: str, tag: str = GUESS) -> list[str]:
    pad = " " * indent
    first = f"{tag}: {text}" if tag else text
    return [
        f"{pad}# {line}"
        for line in textwrap.wrap(first, WIDTH - indent - 2, break_long_words=False, break_on_hyphens=False)
    ]


def _mapping(indent: int, key: str, value: Any) -> list[str]:
    """``key: value`` with nested mappings and one-item lists of mappings (field specs) expanded."""
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return [f"{pad}{key}: {{}}"]
        lines = [f"{pad}{key}:"]
        for k, v in value.items():
            lines += _mapping(indent + 2, str(k), v)
        return lines
    if isinstance(value, list) and value and isinstance(value[0], dict):
        lines = [f"{pad}{key}:"]
        for item in value:
            inner = []
            for k, v in item.items():
                inner += _mapping(indent + 4, str(k), v)
            inner[0] = f"{pad}  - " + inner[0].lstrip()
            lines += inner
        return lines
    if isinstance(value, list):
        return [f"{pad}{key}: [{', '.join(scalar(v) for v in value)}]"]
    return [f"{pad}{key}: {scalar(value)}"]


def _guessed(indent: int, key: str, guess: Guess, value: Any = None) -> list[str]:
    lines = _comment(indent, guess.note) if guess.note else []
    return lines + _mapping(indent, key, guess.value if value is None else value)


def _compact(spec: Any) -> Any:
    """``paginator: {kind: x}`` alone as ``paginator: x`` (the shorthand), else the mapping."""
    if isinstance(spec, dict) and set(spec) == {"kind"}:
        return spec["kind"]
    return spec


def endpoint(ep: EndpointDraft) -> list[str]:
    lines = [f"  - name: {scalar(ep.name)}", f"    path: {scalar(ep.path)}"]
    if ep.description:
        lines += _mapping(4, "description", ep.description)
    lines += _guessed(4, "primary_key", ep.primary_key)
    lines += _guessed(4, "records", ep.records)
    paging = {k: v for k, v in ep.paginator.value.items() if not (k == "limit_param" and v == "limit")}
    lines += _guessed(4, "paginator", ep.paginator, _compact(paging))
    lines += _guessed(4, "incremental", ep.incremental)
    if ep.page_size.value is not None:
        lines += _guessed(4, "page_size", ep.page_size)
    if ep.params.value:
        lines += _guessed(4, "params", ep.params)
    if "*" in ep.field_notes:
        lines += _comment(4, ep.field_notes["*"])
    lines.append("    fields:")
    for name, spec in ep.fields.items():
        if name in ep.field_notes:
            lines += _comment(6, ep.field_notes[name])
        lines += _mapping(6, name, spec)
    if ep.children.value:
        lines += _guessed(4, "children", ep.children)
    if ep.loose.value:
        lines += _guessed(4, "loose", ep.loose)
    if ep.left_out:
        lines += _comment(4, "left out (the source-file vocabulary cannot hold them):", tag="")
        for why in ep.left_out:
            lines += _comment(4, f"  {why}", tag="")
    return lines


def source_file(draft: SourceDraft) -> str:
    """The whole file's text."""
    env = f"SOURCES__{draft.name.upper()}__"
    secrets = ", ".join(env + s.upper() for s in draft.auth_secrets)
    lines = _comment(0, f"{draft.name}: written by `{draft.origin}`.", tag="")
    lines += _comment(
        0,
        "A starting point: each value marked GUESS was inferred, not stated by the service; check it, then"
        " delete the mark. Every key: docs/sources.md.",
        tag="",
    )
    base = f" ({draft.base_url})" if draft.base_url else ""
    lines += _comment(
        0, f"Base URL{base}: {env}BASE_URL or [sources.{draft.name}] base_url in .dlt/config.toml.", tag=""
    )
    if secrets:
        lines += _comment(
            0,
            f"Secrets: {secrets} (or .dlt/secrets.toml [sources.{draft.name}]); never in this file.",
            tag="",
        )
    if draft.description:
        lines += _mapping(0, "description", draft.description)
    if draft.openapi.value:
        lines += _comment(
            0,
            "the service's OpenAPI document: fetched before every load and compared with the fields below; a"
            " field removed, renamed or retyped fails the run before any data request",
            tag="",
        )
        lines += _mapping(0, "openapi", draft.openapi.value)
    else:
        lines += _comment(
            0,
            "openapi: /openapi.json   <- set it to the path of the service's OpenAPI document, if it serves"
            " one: every load then checks the fields below against it first",
            tag="",
        )
    auth = draft.auth.value
    lines += _guessed(
        0, "auth", draft.auth, auth["kind"] if isinstance(auth, dict) and len(auth) == 1 else auth
    )
    lines.append("endpoints:")
    for ep in draft.endpoints:
        lines += endpoint(ep)
    if draft.hard_deletes is not None:
        lines += _comment(0, draft.hard_deletes.note or "")
        lines += ["# " + line for line in _mapping(0, "hard_deletes", draft.hard_deletes.value)]
    return "\n".join(lines) + "\n"
