"""``make docs``: dbt's docs site as one page that opens from the file system, with a clean console.

Why ``--static``: dbt's ``target/index.html`` fetches ``manifest.json`` and ``catalog.json`` at load
time, which a browser refuses over ``file://`` (the page stays blank); ``dbt docs generate --static``
inlines both into ``target/static_index.html``.

Why the two edits afterwards: dbt-docs' page, opened from a file, logs an error per tree node and a
failed load: its icon templates carry ``xlink:href="{{ getIcon(...) }}"``, which the browser resolves
as a relative *file* URL before Angular fills it in (blocked: "Unsafe attempt to load URL"), and its
favicon link holds an unbuilt ``${require('./assets/favicons/favicon.ico')}``. ``getIcon`` returns
``#icn-…`` (a fragment), so prefixing the template with ``#`` and dropping that character from the
value keeps the rendered icons identical while the unfilled template is a harmless in-page fragment;
the favicon becomes an empty ``data:`` URL (also no ``/favicon.ico`` request). Each edit is checked:
a dbt release that changes the markup is reported, and the page is left as dbt wrote it otherwise.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from core.atomic_files import write_atomic

log = logging.getLogger("elt.docs")

STATIC_PAGE = "static_index.html"
_ICON = re.compile(r"""xlink:href="\{\{ getIcon\(item\.type, (\\?'o(?:n|ff)\\?')\) \}\}\"""")
_FAVICON = re.compile(r"""<link rel="shortcut icon" href="\$\{require\('[^']*favicon\.ico'\)\}"/>""")


def clean(text: str) -> tuple[str, dict[str, int]]:
    """The page with both edits applied, and how many places each edit changed."""
    text, icons = _ICON.subn(r'ng-attr-xlink:href="{{ getIcon(item.type, \1) }}"', text)
    text, favicons = _FAVICON.subn('<link rel="icon" href="data:,"/>', text)
    return text, {"icon templates": icons, "favicon links": favicons}


def finish(target: Path) -> Path:
    """Apply ``clean`` to ``<target>/static_index.html`` in place (atomically); return its path."""
    page = target / STATIC_PAGE
    if not page.is_file():
        raise RuntimeError(f"{page} not found: `dbt docs generate --static` did not write it")
    text, counts = clean(page.read_text(encoding="utf-8"))
    for what, n in counts.items():
        if n == 0:
            log.warning(
                "docs: no %s to fix in %s (dbt-docs changed?): the page may log errors", what, page.name
            )
    write_atomic(page, text)
    return page
