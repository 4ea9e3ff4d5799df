"""The run log inside the warehouse: who ran which step, when, how many rows, and how it ended.

Operators answer "what loaded last night and did it fail?" with SQL on ``ops.runs`` instead of
grepping log files, and failed runs are recorded too (a run row is written at start, then finished).
Error text is scrubbed of secrets before it is stored.

Callers pass an open read-write DuckDB connection and hold the warehouse lock (``elt.lock``) while
they do; the tables are created on first use.
"""

from __future__ import annotations

import functools
import getpass
import os
import socket
import subprocess
import uuid

import duckdb

from elt import settings
from elt.secrets import scrub

STATUSES = ("running", "success", "failed", "skipped")

_DDL = """
create schema if not exists {ops};
create table if not exists {ops}.runs (
    run_id varchar primary key,
    command varchar not null,
    step varchar not null,
    "user" varchar,
    host varchar,
    git_rev varchar,
    started_at timestamp with time zone not null,
    finished_at timestamp with time zone,
    status varchar not null,
    rows bigint,
    error varchar
);
create table if not exists {ops}.run_tables (
    run_id varchar not null,
    source varchar not null,
    table_name varchar not null,
    rows bigint not null
);
create table if not exists {ops}.run_inputs (
    run_id varchar not null,
    kind varchar not null,
    name varchar not null,
    detail varchar
);
"""


def _ops(con: duckdb.DuckDBPyConnection) -> str:
    """The ``ops`` schema qualified by the connection's database, so a warehouse file that happens
    to be called ``ops.duckdb`` (catalog ``ops``) does not make ``ops.runs`` ambiguous."""
    (database,) = con.execute("select current_database()").fetchone()
    return '"{}".ops'.format(database.replace('"', '""'))


def ensure_tables(con: duckdb.DuckDBPyConnection) -> str:
    """Create the ``ops`` schema and tables when missing (idempotent); return the qualified schema."""
    ops = _ops(con)
    con.execute(_DDL.format(ops=ops))
    return ops


@functools.cache
def git_revision() -> str | None:
    """The repo's HEAD commit (with ``-dirty`` when the tree has changes), or None outside git."""
    root = settings.repo_root()
    try:
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{rev}-dirty" if dirty else rev


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER")


def start_run(con: duckdb.DuckDBPyConnection, command: str, step: str) -> str:
    """Record a run as ``running`` and return its id (a uuid4 hex string)."""
    ops = ensure_tables(con)
    run_id = uuid.uuid4().hex
    con.execute(
        f"""insert into {ops}.runs (run_id, command, step, "user", host, git_rev, started_at, status)
           values (?, ?, ?, ?, ?, ?, now(), 'running')""",
        [run_id, scrub(command), step, _user(), socket.gethostname(), git_revision()],
    )
    return run_id


def finish_run(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    status: str,
    rows: int | None = None,
    error: str | None = None,
) -> None:
    """Close a run with its final ``status`` (success/failed/skipped), row count and scrubbed error."""
    if status not in STATUSES:
        raise ValueError(f"unknown run status {status!r}; expected one of {STATUSES}")
    ops = ensure_tables(con)
    con.execute(
        f"update {ops}.runs set finished_at = now(), status = ?, rows = ?, error = ? where run_id = ?",
        [status, rows, scrub(error), run_id],
    )


def record_table(con: duckdb.DuckDBPyConnection, run_id: str, source: str, table: str, rows: int) -> None:
    """Record how many rows a run wrote to one table (one row per source table per run)."""
    ops = ensure_tables(con)
    con.execute(
        f"insert into {ops}.run_tables (run_id, source, table_name, rows) values (?, ?, ?, ?)",
        [run_id, source, table, rows],
    )


def record_input(
    con: duckdb.DuckDBPyConnection, run_id: str, kind: str, name: str, detail: str | None
) -> None:
    """Record what a run read: a source service (``kind='source'``, its base URL and where its cursors
    started), a raw load a dbt build read (``kind='raw_load'``), the dbt invocation an export published
    (``kind='dbt_invocation'``). With ``run_tables`` (what it wrote) this answers "where did this come
    from" for every run; ``detail`` is scrubbed like errors, so a URL with a credential in it is masked."""
    ops = ensure_tables(con)
    con.execute(
        f"insert into {ops}.run_inputs (run_id, kind, name, detail) values (?, ?, ?, ?)",
        [run_id, kind, name, scrub(detail)],
    )
