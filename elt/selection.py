"""Which sources a flow run covers: ``--sources a,b`` checked against the registry of source files.

Why here and not only in the loader (``python -m extract a b`` checks names too): a typo must fail at
once, before the run takes the lock, starts services or writes a run-log row, with the list of known
sources on one line. The registry (``extract.sources``, the files of ``sources/`` or ``SHOP_SOURCES_DIR``)
is the only list of names: nothing here knows the shop's five.
"""

from __future__ import annotations


class SelectionError(ValueError):
    """``--sources`` names a source no file defines (or the files themselves are invalid)."""


def known() -> dict[str, bool]:
    """Every source the files define, by name: whether it is embedded (started by the local fleet).

    Raises SelectionError when a file is invalid (its message names the file and the key)."""
    from extract.errors import SourceFileError  # imported here: `elt export`/`elt dbt` never need it
    from extract.sources import SERVICES

    try:
        return {name: service.embedded for name, service in SERVICES.items()}
    except SourceFileError as exc:
        raise SelectionError(str(exc)) from exc


def parse(raw: str | None) -> list[str]:
    """The names of ``--sources a,b`` (in the order given, repeats dropped); [] for every source."""
    if raw is None:
        return []
    names = list(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    if not names:
        raise SelectionError("--sources is empty; give comma-separated source names, e.g. --sources orders")
    sources = known()
    unknown = [n for n in names if n not in sources]
    if unknown:
        raise SelectionError(
            f"unknown source(s) {', '.join(unknown)}; known: {', '.join(sources)} "
            "(one file per source in sources/ or SHOP_SOURCES_DIR)"
        )
    return names


def embedded(names: list[str] | None = None) -> list[str]:
    """The embedded sources among ``names`` (all of them when ``names`` is empty or None)."""
    sources = known()
    return [n for n, is_embedded in sources.items() if is_embedded and (not names or n in names)]
