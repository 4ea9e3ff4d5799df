"""The style check for ``macros/``: the part of dbt Labs' style that sqlfluff cannot see there.

Why our own check: sqlfluff does not lint macro bodies with either templater (the dbt templater skips
files that only define macros; the jinja templater renders them to nothing), and that is upstream's
policy, since a macro body is a fragment, not a statement (sqlfluff issues #1401, #6544). Models are
still linted with the macros expanded, so what a macro renders is checked where it is used; this check
covers the macro source itself, which the next engineer reads and copies.

The rules, each a line ``file:line: rule: message``:
- ``doc``: every ``{% macro %}`` / ``{% test %}`` follows a Jinja doc comment (``{#- ... -#}``) that says
  why it exists and what its arguments mean (extract/spec.py's rule for Python, applied to Jinja);
- ``case``: SQL keywords outside quotes, comments and Jinja tags are lower-case;
- ``padding``: Jinja tags have one space inside (``{{ x }}``, ``{% if x %}``), as sqlfluff's JJ01;
- ``layout``: no tab, no trailing blank, lines within the project's 120 characters, a final newline.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

MAX_LINE = 120  # .sqlfluff's max_line_length

KEYWORDS = [
    *("select", "from", "where", "join", "left", "right", "inner", "outer", "full", "cross", "on", "using"),
    *("group", "order", "by", "having", "limit", "union", "all", "distinct", "as", "and", "or", "not"),
    *("null", "is", "in", "exists", "between", "like", "case", "when", "then", "else", "end", "cast"),
    *("with", "over", "partition", "qualify", "filter", "coalesce", "nullif", "insert", "into", "values"),
    *("update", "delete", "create", "table", "view", "replace", "true", "false", "asc", "desc", "interval"),
]
_KEYWORD = re.compile(r"\b(" + "|".join(k.upper() for k in KEYWORDS) + r")\b")
_DEFINITION = re.compile(r"\{%-?\s*(macro|test)\s+(\w+)")
_DOC_END = re.compile(r"-?#\}\s*$")
# an opening tag not followed by (an optional "-" and) a space, or a closing one not preceded by one
_BAD_PADDING = re.compile(r"\{[{%](?!-?[ \n])|(?<![ \n])-[}%]\}|(?<![ \n-])[}%]\}")


def _sql_only(text: str) -> str:
    """``text`` with Jinja tags, Jinja/SQL comments and quoted strings blanked (newlines kept)."""

    def blank(m: re.Match[str]) -> str:
        return re.sub(r"[^\n]", " ", m.group(0))

    for pattern in (r"\{#.*?#\}", r"\{%.*?%\}", r"\{\{.*?\}\}", r"--[^\n]*", r"'(?:[^'\\]|\\.)*'"):
        text = re.sub(pattern, blank, text, flags=re.S)
    return text


def check_text(text: str, where: str) -> list[str]:
    """Every rule broken in one macro file's ``text``, each as ``where:line: rule: message``."""
    problems: list[str] = []
    lines = text.split("\n")
    sql_lines = _sql_only(text).split("\n")
    for n, (line, sql) in enumerate(zip(lines, sql_lines, strict=True), start=1):
        if "\t" in line:
            problems.append(f"{where}:{n}: layout: a tab (indent with spaces)")
        if line != line.rstrip():
            problems.append(f"{where}:{n}: layout: trailing whitespace")
        if len(line) > MAX_LINE:
            problems.append(f"{where}:{n}: layout: {len(line)} characters (at most {MAX_LINE})")
        if m := _KEYWORD.search(sql):
            problems.append(f"{where}:{n}: case: SQL keyword {m.group(1)!r} in upper case (write lower-case)")
        if _BAD_PADDING.search(re.sub(r"\{#.*?#\}", "", line)):
            problems.append(f"{where}:{n}: padding: one space inside a Jinja tag ({{{{ x }}}}, {{% x %}})")
        if m := _DEFINITION.search(line):
            before = "\n".join(lines[: n - 1]).rstrip()
            if not _DOC_END.search(before):
                problems.append(
                    f"{where}:{n}: doc: {m.group(1)} {m.group(2)!r} has no doc comment right above it"
                    " ({#- why; arguments -#})"
                )
    if text and not text.endswith("\n"):
        problems.append(f"{where}:{len(lines)}: layout: no newline at the end of the file")
    return problems


def run(root: Path, folder: str = "macros") -> int:
    """Check every ``.sql`` under ``root/folder``; print the problems; 1 when there are any."""
    files = sorted((root / folder).rglob("*.sql"))
    problems = [p for f in files for p in check_text(f.read_text(encoding="utf-8"), str(f.relative_to(root)))]
    for problem in problems:
        print(problem, file=sys.stderr)
    print(
        f"lint-sql: {len(files)} macro files checked, {len(problems)} problem(s)"
        + (" (transform/lint_macros.py says what each rule is for)" if problems else ""),
        file=sys.stderr,
    )
    return 1 if problems else 0
