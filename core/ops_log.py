"""The run log inside the warehouse: who ran which step, when, how many rows, and how it ended.

Operators answer "what loaded last night and did it fail?" with SQL on ``ops.runs`` instead of
grepping log files, and failed runs are recorded too (a run row is written at start, then finished).
Error text is scrubbed of secrets before it is stored.

Callers pass an open read-write DuckDB connection and hold the warehouse lock (``core.lock``) while
they do; the tables are created on first use.

A writer keeps its run as a ``RunRecord`` in memory and writes it whole (``save_run``: the run row,
its tables, its inputs and - for a loader run - each endpoint's reported total and walked and loaded
rows in ``ops.run_endpoints``, replacing what an earlier write of the same run left). Why whole rows and
not "insert at start, update at the end": the warehouse the log lives in is the thing that fails on a
full disk or a read-only mount, so any one write may be lost; a record that is complete on its own can
be kept in the fallback file instead (``core.ops_fallback``) and written later without depending on
which of the earlier writes arrived.
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import os
import socket
import subprocess
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb

from core import settings
from core.secrets import scrub

# "partial": a flow run that published without the sources that failed (--allow-partial)
STATUSES = ("running", "success", "failed", "skipped", "interrupted", "partial")

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
    error varchar,
    pid bigint
);
alter table {ops}.runs add column if not exists pid bigint;
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
create table if not exists {ops}.run_endpoints (
    run_id varchar not null,
    source varchar not null,
    endpoint varchar not null,
    expected_rows bigint,
    walked_rows bigint not null,
    loaded_rows bigint not null,
    status varchar not null
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


@dataclass
class RunRecord:
    """One ``ops.runs`` row with its ``run_tables`` and ``run_inputs`` rows, as its writer holds it.

    Text that could carry a secret (command, error, input details) is scrubbed when it enters the
    record, so the fallback file never holds more than the warehouse would. Times are ISO 8601 with
    offset (the fallback file is JSON).
    """

    run_id: str
    command: str
    step: str
    user: str | None
    host: str | None
    git_rev: str | None
    started_at: str
    status: str = "running"
    finished_at: str | None = None
    rows: int | None = None
    error: str | None = None
    tables: list[tuple[str, str, int]] = field(default_factory=list)
    inputs: list[tuple[str, str, str | None]] = field(default_factory=list)
    # per endpoint of a loader run: (source, endpoint, reported total or None, walked, loaded, status)
    endpoints: list[tuple[str, str, int | None, int, int, str]] = field(default_factory=list)
    pid: int | None = None  # the writer's process, so a row it could not close is closed by the next

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        """The record ``to_json`` wrote; raises ``KeyError``/``TypeError``/``ValueError`` on anything else."""
        record = cls(
            **{k: data[k] for k in ("run_id", "command", "step", "user", "host", "git_rev", "started_at")},
            status=data["status"],
            finished_at=data.get("finished_at"),
            rows=data.get("rows"),
            error=data.get("error"),
            tables=[(str(s), str(t), int(n)) for s, t, n in data.get("tables") or []],
            inputs=[(str(k), str(n), d) for k, n, d in data.get("inputs") or []],
            endpoints=[
                (str(s), str(e), None if x is None else int(x), int(w), int(n), str(st))
                for s, e, x, w, n, st in data.get("endpoints") or []
            ],
            pid=data.get("pid"),
        )
        if record.status not in STATUSES or not record.run_id:
            raise ValueError(f"not a run record: status {record.status!r}")
        return record


def _now() -> str:
    return datetime.now(UTC).isoformat()


def new_run(command: str, step: str) -> RunRecord:
    """A ``running`` record for ``step`` of ``command`` (not written anywhere yet; see ``save_run``)."""
    return RunRecord(
        run_id=uuid.uuid4().hex,
        command=scrub(command) or command,
        step=step,
        user=_user(),
        host=socket.gethostname(),
        git_rev=git_revision(),
        started_at=_now(),
        pid=os.getpid(),
    )


def finish(
    record: RunRecord,
    status: str,
    rows: int | None = None,
    error: str | None = None,
    tables: list[tuple[str, str, int]] | None = None,
    inputs: list[tuple[str, str, str | None]] | None = None,
) -> RunRecord:
    """Give ``record`` its final status, end time, rows and scrubbed error (and what it wrote/read)."""
    if status not in STATUSES or status == "running":
        raise ValueError(f"unknown final run status {status!r}; expected one of {STATUSES[1:]}")
    record.status, record.finished_at, record.rows, record.error = status, _now(), rows, scrub(error)
    if tables is not None:
        record.tables = list(tables)
    if inputs is not None:
        record.inputs = [(kind, name, scrub(detail)) for kind, name, detail in inputs]
    return record


def save_run(con: duckdb.DuckDBPyConnection, record: RunRecord) -> bool:
    """Write ``record`` whole, in one transaction: its run row, and its tables and inputs replacing any
    this run had. Idempotent (writing it twice leaves one row each), and a ``running`` record never
    overwrites a run that already has its final status, so rows written late, in any order, converge
    on the final state. Returns False when the record was older than what ``ops`` holds."""
    ops = ensure_tables(con)
    con.begin()
    try:
        existing = con.execute(f"select status from {ops}.runs where run_id = ?", [record.run_id]).fetchone()
        if existing is not None and existing[0] != "running" and record.status == "running":
            con.rollback()
            return False
        con.execute(
            f"""insert or replace into {ops}.runs (run_id, command, step, "user", host, git_rev, started_at,
               finished_at, status, rows, error, pid)
               values (?, ?, ?, ?, ?, ?, ?::timestamptz, ?::timestamptz, ?, ?, ?, ?)""",
            [
                record.run_id,
                record.command,
                record.step,
                record.user,
                record.host,
                record.git_rev,
                record.started_at,
                record.finished_at,
                record.status,
                record.rows,
                scrub(record.error),
                record.pid,
            ],
        )
        con.execute(f"delete from {ops}.run_tables where run_id = ?", [record.run_id])
        for source, table, rows in record.tables:
            con.execute(
                f"insert into {ops}.run_tables (run_id, source, table_name, rows) values (?, ?, ?, ?)",
                [record.run_id, source, table, rows],
            )
        con.execute(f"delete from {ops}.run_endpoints where run_id = ?", [record.run_id])
        for source, endpoint, expected, walked, loaded, status in record.endpoints:
            con.execute(
                f"insert into {ops}.run_endpoints (run_id, source, endpoint, expected_rows, walked_rows,"
                " loaded_rows, status) values (?, ?, ?, ?, ?, ?, ?)",
                [record.run_id, source, endpoint, expected, walked, loaded, status],
            )
        con.execute(f"delete from {ops}.run_inputs where run_id = ?", [record.run_id])
        for kind, name, detail in record.inputs:
            con.execute(
                f"insert into {ops}.run_inputs (run_id, kind, name, detail) values (?, ?, ?, ?)",
                [record.run_id, kind, name, scrub(detail)],
            )
        con.commit()
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            con.rollback()
        raise
    return True


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None when there is no such process.

    Read from ``/proc``: the start time tells a live writer from a new process that got a dead
    writer's pid. Off Linux a process that exists counts as started at the epoch (never "new")."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # exists, another user's
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            # the command may hold spaces and parentheses: fields after its closing one
            fields = f.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return 0.0


def close_orphans(con: duckdb.DuckDBPyConnection) -> int:
    """Close ``running`` rows of this host whose writer process is gone (killed with -9, or stopped
    by its watchdog before it could write): status ``interrupted``, ended now. Returns how many.

    A pid now used by a process that started after the row did is gone too. Rows of other hosts and
    of older warehouses (no pid) are left alone: nothing here can tell whether they still run."""
    ops = ensure_tables(con)
    rows = con.execute(
        f"select run_id, pid, epoch(started_at) from {ops}.runs "
        "where status = 'running' and pid is not null and host = ? and pid <> ?",
        [socket.gethostname(), os.getpid()],
    ).fetchall()
    closed = 0
    for run_id, pid, started in rows:
        began = _process_start(int(pid))
        if began is not None and began <= float(started) + 1.0:
            continue  # its writer still runs
        con.execute(
            f"update {ops}.runs set status = 'interrupted', finished_at = now(), error = ? "
            "where run_id = ? and status = 'running'",
            [f"its process (pid {pid}) ended without closing this run (killed or stopped)", run_id],
        )
        closed += 1
    return closed


def start_run(con: duckdb.DuckDBPyConnection, command: str, step: str) -> str:
    """Record a run as ``running`` and return its id (a uuid4 hex string)."""
    record = new_run(command, step)
    save_run(con, record)
    return record.run_id


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
