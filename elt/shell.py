"""``python -m elt shell``: query the warehouse (or the published Parquet) without any risk of writing.

The warehouse is opened read-only in a small readline SQL loop. Ready-made shells were checked and
do not fit: the ``duckdb-cli`` PyPI package is DuckDB 1.5 and refuses DuckDB 2.0 files ("database
file with version number 69"); Harlequin 2.17 handles DuckDB 2.0 but pins click 8.5, which sqlfluff
4.4 excludes, and Harlequin 2.12 (the newest that resolves here) crashes on paths that call the
removed ``Relation.fetchone()``. The loop also serves pipes (``echo 'select 1;' | make shell``) and
``-c SQL``.

``--exports`` opens an in-memory database with one view per mart of ``exports/current`` - handy while
a long dbt build holds the warehouse's write lock, since Parquet readers are never blocked.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TextIO

import duckdb

from core import lock, settings
from core.checksums import parquet_list, quote_ident
from publish import versions

MAX_ROWS = 200


def exports_views_sql(exports: Path) -> str:
    """``create view`` statements for every mart of the current version (resolved once)."""
    version_dir = versions.resolve_current(exports)
    if version_dir is None:
        raise FileNotFoundError(f"nothing published yet under {exports} (run `make export`)")
    manifest = versions.read_manifest(version_dir)
    statements = []
    for name, mart in manifest["marts"].items():
        files = [version_dir / f["path"] for f in mart["files"]]
        statements.append(
            f"create or replace view {quote_ident(name)} as "
            f"select * from read_parquet({parquet_list(files)}, hive_partitioning = false);"
        )
    return "\n".join(statements) + "\n"


def open_warehouse() -> duckdb.DuckDBPyConnection:
    """The warehouse read-only, with a clear message when a writer holds it."""
    path = settings.warehouse_path()
    if not path.exists():
        raise FileNotFoundError(f"no warehouse at {path} yet (run `make elt`)")
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        holder = lock.lock_path().read_text().strip() if lock.lock_path().exists() else "another process"
        raise RuntimeError(
            f"the warehouse is being written ({holder or 'a writer'}); retry when it finishes, "
            "or query the published Parquet with `python -m elt shell --exports`"
        ) from None


def format_rows(columns: list[str], rows: list[tuple[object, ...]], more: bool) -> str:
    """A plain fixed-width table (what a terminal or a pipe can show without extra packages)."""
    cells = [[("NULL" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''}{', more not shown' if more else ''})")
    return "\n".join(out)


def execute(con: duckdb.DuckDBPyConnection, sql: str, out: TextIO) -> bool:
    """Run one statement and print its result; False (after printing the error) when it failed."""
    try:
        cur = con.execute(sql)
        if cur.description is None:
            print("ok", file=out)
            return True
        rows = cur.fetchmany(MAX_ROWS + 1)
        columns = [d[0] for d in cur.description]
        print(format_rows(columns, rows[:MAX_ROWS], len(rows) > MAX_ROWS), file=out)
        return True
    except duckdb.Error as exc:
        print(f"error: {exc}", file=out)
        return False


def repl(con: duckdb.DuckDBPyConnection, stdin: TextIO, out: TextIO) -> int:
    """Statements end with ``;``. ``.tables`` lists relations, ``.quit`` leaves. Returns 1 if any failed."""
    interactive = stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
        print("read-only SQL shell; end statements with ';', .tables to list, .quit to leave", file=out)
    failed = False
    buffer: list[str] = []
    while True:
        try:
            line = input("sql> " if not buffer else "...> ") if interactive else stdin.readline()
        except EOFError:
            break
        if not interactive and line == "":
            break
        stripped = line.strip()
        if not buffer and stripped in (".quit", ".exit", "\\q"):
            break
        if not buffer and stripped == ".tables":
            stripped = (
                "select table_schema as schema, table_name as name, table_type as type "
                "from information_schema.tables order by 1, 2;"
            )
        if stripped:
            buffer.append(stripped)
        if buffer and buffer[-1].endswith(";"):
            failed |= not execute(con, "\n".join(buffer), out)
            buffer = []
    if buffer:
        failed |= not execute(con, "\n".join(buffer), out)
    return 1 if failed else 0


def run(*, exports: bool = False, command: str | None = None) -> int:
    """Entry point for ``python -m elt shell``."""
    if exports:
        con = duckdb.connect()
        con.execute(exports_views_sql(settings.exports_dir()))
    else:
        con = open_warehouse()
    with con:
        if command is not None:
            return 0 if execute(con, command, sys.stdout) else 1
        return repl(con, sys.stdin, sys.stdout)
