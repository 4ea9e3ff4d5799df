"""Helpers for the fault suite: isolated workspaces, running the real flow (and killing it), and the one
comparison every case ends with — the warehouse and the published Parquet against a clean run.

Why a fingerprint and not a byte compare: a recovered run legitimately differs from a clean one in
bookkeeping (dlt load ids, dbt snapshot timestamps, version ids). What must not differ is the data:
per table the row count, the money totals, a checksum of the keys and a checksum of every
non-bookkeeping column. ``fingerprint`` computes exactly that for every raw, snapshot and mart table and
for every published mart; ``diff_fingerprints`` says precisely what differs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from core import lock
from core.checksums import quote_ident, quote_literal
from tests.pytest.sources_env import child_env

REPO = Path(__file__).resolve().parents[3]
# Columns that record *when/which run* wrote a row, not what the row says.
VOLATILE = re.compile(r"^(_dlt_.*|dbt_.*|load_id|.*_load_id|loaded_at|_loaded_at)$")
MONEY = re.compile(r"(_minor|amount.*|.*_usd|revenue.*|list_price|unit_price|line_amount|value_.*)$")
KEYS = re.compile(r"^(.*_id|event_id|sku|.*_key)$")
FINGERPRINT_SCHEMAS = ("raw_customers", "raw_catalog", "raw_orders", "raw_payments", "raw_events", "marts")


@dataclass
class Workspace:
    """One isolated set of project paths (warehouse, exports, run dir, dbt target) for one flow."""

    root: Path
    env: dict[str, str]

    @property
    def warehouse(self) -> Path:
        return Path(self.env["SHOP_WAREHOUSE"])

    @property
    def exports(self) -> Path:
        return Path(self.env["SHOP_EXPORTS_DIR"])

    @property
    def run_dir(self) -> Path:
        return Path(self.env["SHOP_RUN_DIR"])

    def current_version(self) -> str | None:
        link = self.exports / "current"
        return os.readlink(link) if link.is_symlink() else None


def make_workspace(
    root: Path, fleet_env: dict[str, str], pii_key: str, seed_target: Path | None = None
) -> Workspace:
    """Paths under ``root`` and an environment pointing the flow at ``fleet_env``'s services.

    Credentials go in as ``SOURCES__*`` variables (so the per-case run dir needs no fleet.env). When
    ``seed_target`` holds a dbt ``partial_parse.msgpack`` it is copied in, saving dbt's ~10 s full parse.
    """
    root.mkdir(parents=True, exist_ok=True)
    env = child_env("SOURCES__", "SHOP_", "DBT_")
    env.pop(lock.INHERITED_FD_ENV, None)
    env.update({k: v for k, v in fleet_env.items() if k.startswith("SOURCES__")})
    env.update(
        SHOP_WAREHOUSE=str(root / "warehouse" / "shop.duckdb"),
        SHOP_EXPORTS_DIR=str(root / "exports"),
        SHOP_RUN_DIR=str(root / "run"),
        SHOP_PII_KEY=pii_key,
        SHOP_LOCK_WAIT="20",
        DBT_TARGET_PATH=str(root / "target"),
        DBT_LOG_PATH=str(root / "logs"),
        RUNTIME__DLTHUB_TELEMETRY="false",
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        SOURCES__EXTRACT__MAX_ATTEMPTS="3",
        SOURCES__EXTRACT__BACKOFF_MAX="1",
    )
    (root / "warehouse").mkdir(exist_ok=True)
    (root / "target").mkdir(exist_ok=True)
    if seed_target is not None and (seed_target / "partial_parse.msgpack").exists():
        shutil.copy2(seed_target / "partial_parse.msgpack", root / "target" / "partial_parse.msgpack")
    return Workspace(root, env)


@dataclass
class Outcome:
    """A finished (or killed) process: exit code, combined output, and whether we killed it."""

    args: list[str]
    returncode: int
    output: str
    killed_at: str | None = None
    seconds: float = 0.0

    def describe(self) -> str:
        return f"`{' '.join(self.args)}` exited {self.returncode}; output tail:\n{self.output[-4000:]}"


def run(ws: Workspace, args: list[str], timeout: float = 300.0) -> Outcome:
    """Run ``python <args>`` in the repo with the workspace env; capture everything it prints."""
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=ws.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    out = Outcome(args, proc.returncode, proc.stdout, seconds=time.monotonic() - t0)
    _save_log(ws, out)
    return out


def _save_log(ws: Workspace, out: Outcome) -> None:
    """Keep every captured output in the workspace (the secrets test searches them all)."""
    logs = ws.root / "captured"
    logs.mkdir(exist_ok=True)
    n = len(list(logs.iterdir()))
    (logs / f"{n:03d}.log").write_text(out.output)


def flow(ws: Workspace, timeout: float = 300.0) -> Outcome:
    """``python -m elt run --no-services`` against the workspace's services."""
    return run(ws, ["-m", "elt", "run", "--no-services"], timeout=timeout)


# Kill points: a regex on the flow's output, and a delay after it (so "load" lands after the walk).
KILL_POINTS: dict[str, tuple[str, float]] = {
    "extract": (r"INFO elt\.flow: extract:", 2.0),
    "normalize": (r"extract\.progress: orders/orders: done", 0.12),
    "load": (r"extract\.progress: events/events: done", 0.35),
    "dbt models": (r"START sql (table|incremental) model marts\.", 0.0),
    # the row drop guards (source tests) start first: a "dbt tests" kill lands among the model tests
    "dbt tests": (r"START test (?!\S*row_drop_guard)", 0.3),
    "snapshots": (r"START snapshot ", 0.0),
    "publish": (r"INFO elt\.publish: published ", 0.0),
}


def flow_killed_at(ws: Workspace, point: str, extra_delay: float = 0.0, timeout: float = 300.0) -> Outcome:
    """Start the flow and ``kill -9`` its whole process group (flow, loader, dbt) at ``point``.

    The kill happens when the point's marker line appears (plus its delay and ``extra_delay``); if
    the flow finishes first, the outcome says so (``killed_at`` None) and the caller decides.
    """
    pattern, delay = KILL_POINTS[point]
    marker = re.compile(pattern)
    args = ["-m", "elt", "run", "--no-services"]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env={**ws.env, "SHOP_DBT_OUTPUT": "nodes"},  # the dbt kill points wait for dbt's START lines
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    killed: list[str] = []

    def kill_later(wait: float) -> None:
        time.sleep(wait)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            killed.append(point)

    timer: threading.Thread | None = None
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        lines.append(line)
        if timer is None and marker.search(line):
            timer = threading.Thread(target=kill_later, args=(delay + extra_delay,), daemon=True)
            timer.start()
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            break
    code = proc.wait()
    if timer is not None:
        timer.join()
    out = Outcome(args, code, "".join(lines), killed[0] if killed else None, time.monotonic() - t0)
    _save_log(ws, out)
    return out


def flow_killed_after(ws: Workspace, seconds: float, timeout: float = 300.0) -> Outcome:
    """Start the flow and ``kill -9`` its process group after ``seconds`` (a random moment)."""
    args = ["-m", "elt", "run", "--no-services"]
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env=ws.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, _ = proc.communicate(timeout=seconds)
        killed = None
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, _ = proc.communicate(timeout=timeout)
        killed = f"{seconds:.1f}s"
    out = Outcome(args, proc.returncode, stdout, killed, seconds)
    _save_log(ws, out)
    return out


# ---------------------------------------------------------------------------------------------------------
# The fingerprint and its comparison


@dataclass
class TablePrint:
    rows: int
    money: dict[str, str] = field(default_factory=dict)
    keys: str = ""
    content: str = ""


NUMERIC = re.compile(r"^(DECIMAL|BIGINT|INTEGER|HUGEINT|SMALLINT|DOUBLE|FLOAT|UBIGINT)")


def _table_print(con: duckdb.DuckDBPyConnection, relation: str, columns: list[tuple[str, str]]) -> TablePrint:
    stable = [c for c, _ in columns if not VOLATILE.match(c)]
    money = [c for c, t in columns if c in stable and MONEY.search(c) and NUMERIC.match(t.upper())]
    keys = [c for c in stable if KEYS.match(c)]
    parts = ["count(*)"]
    parts += [f"coalesce(sum({quote_ident(c)}), 0)::varchar" for c in money]
    if keys:
        key_row = "row(" + ", ".join(quote_ident(c) for c in keys) + ")"
        parts.append(f"coalesce(sum(hash({key_row})::hugeint), 0)::varchar")
    else:
        parts.append("''")
    all_row = "row(" + ", ".join(quote_ident(c) for c in stable) + ")"
    parts.append(f"coalesce(sum(hash({all_row})::hugeint), 0)::varchar")
    values = con.execute(f"select {', '.join(parts)} from {relation}").fetchone()
    return TablePrint(
        rows=int(values[0]),
        money=dict(zip(money, values[1 : 1 + len(money)], strict=True)),
        keys=values[1 + len(money)],
        content=values[2 + len(money)],
    )


def warehouse_print(warehouse: Path, schemas: tuple[str, ...] = FINGERPRINT_SCHEMAS) -> dict[str, TablePrint]:
    """Fingerprints of every table (not views, not dlt bookkeeping) in ``schemas``; committed rows only."""
    out: dict[str, TablePrint] = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            f"where table_schema in ({', '.join(quote_literal(s) for s in schemas)}) "
            "and table_name not like '\\_dlt%' escape '\\' order by 1, 2"
        ).fetchall()
        for schema, table in tables:
            cols = [
                (r[0], r[1])
                for r in con.execute(
                    "select column_name, data_type from information_schema.columns "
                    "where table_schema = ? and table_name = ? order by ordinal_position",
                    [schema, table],
                ).fetchall()
            ]
            relation = f"{quote_ident(schema)}.{quote_ident(table)}"
            if schema.startswith("raw_") and any(c == "_dlt_load_id" for c, _ in cols):
                relation = (
                    f"(select * from {relation} where _dlt_load_id in (select load_id from "
                    f"{quote_ident(schema)}._dlt_loads where status = 0))"
                )
            out[f"{schema}.{table}"] = _table_print(con, relation, cols)
    return out


def exports_print(exports: Path) -> dict[str, TablePrint]:
    """Fingerprints of every mart of the current published version, read from its Parquet files."""
    version = exports / os.readlink(exports / "current")
    manifest = json.loads((version / "manifest.json").read_text())
    out: dict[str, TablePrint] = {}
    con = duckdb.connect()
    for name, mart in sorted(manifest["marts"].items()):
        files = [str(version / f["path"]) for f in mart["files"]]
        relation = f"read_parquet([{', '.join(quote_literal(f) for f in files)}], hive_partitioning = false)"
        cols = [(r[0], r[1]) for r in con.execute(f"describe select * from {relation}").fetchall()]
        out[f"parquet.{name}"] = _table_print(con, relation, cols)
    con.close()
    return out


def fingerprint(ws: Workspace) -> dict[str, TablePrint]:
    """The whole comparable state of a workspace: warehouse tables plus the current Parquet version."""
    return {**warehouse_print(ws.warehouse), **exports_print(ws.exports)}


def diff_fingerprints(expected: dict[str, TablePrint], got: dict[str, TablePrint]) -> list[str]:
    """Human-readable differences (empty when equal): missing/extra tables, rows, money, keys, content."""
    problems: list[str] = []
    for name in sorted(set(expected) | set(got)):
        if name not in got:
            problems.append(f"{name}: missing (clean run has {expected[name].rows} rows)")
            continue
        if name not in expected:
            problems.append(f"{name}: not in the clean run ({got[name].rows} rows)")
            continue
        e, g = expected[name], got[name]
        if e.rows != g.rows:
            problems.append(f"{name}: {g.rows} rows, clean run {e.rows}")
        for col in sorted(set(e.money) | set(g.money)):
            if e.money.get(col) != g.money.get(col):
                problems.append(f"{name}.{col}: total {g.money.get(col)}, clean run {e.money.get(col)}")
        if e.keys != g.keys:
            problems.append(f"{name}: key checksum differs (lost, duplicated or changed keys)")
        if e.content != g.content:
            problems.append(f"{name}: content checksum differs (some non-bookkeeping value changed)")
    return problems


def assert_matches_clean(expected: dict[str, TablePrint], ws: Workspace, context: str = "") -> None:
    """The suite's one end-of-case check: this workspace equals the clean run, table by table."""
    problems = diff_fingerprints(expected, fingerprint(ws))
    assert not problems, f"{context}: state differs from a clean run:\n  " + "\n  ".join(problems)


def recover_until_clean(ws: Workspace, attempts: int = 1) -> Outcome:
    """Re-run the flow (the documented recovery for any kill) and return the last outcome."""
    out = flow(ws)
    for _ in range(attempts - 1):
        if out.returncode == 0:
            break
        out = flow(ws)
    return out


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout``; a synchronisation aid, never an assertion on speed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def flow_with_action(
    ws: Workspace, pattern: str, action: Callable[[], None], timeout: float = 300.0
) -> tuple[Outcome, bool]:
    """Run the flow and call ``action`` (once, in a thread) when a line matches ``pattern``.

    Returns the outcome and whether the action ran (it is how a case brings a service back mid-run).
    """
    marker = re.compile(pattern)
    args = ["-m", "elt", "run", "--no-services"]
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env=ws.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    worker: threading.Thread | None = None
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if worker is None and marker.search(line):
            worker = threading.Thread(target=action, daemon=True)
            worker.start()
    code = proc.wait(timeout=timeout)
    if worker is not None:
        worker.join(timeout=60)
    out = Outcome(args, code, "".join(lines), seconds=time.monotonic() - t0)
    _save_log(ws, out)
    return out, worker is not None


def stop_service(fleet_obj: object, name: str) -> None:
    """Stop one service of a ``Fleet`` (SIGTERM, then SIGKILL) through its pid file."""
    import psutil

    pid_file = fleet_obj.pid_file(name)  # type: ignore[attr-defined]
    pid = int(pid_file.read_text().strip())
    proc = psutil.Process(pid)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    pid_file.unlink(missing_ok=True)


def mount_tmpfs(path: Path, size: str) -> bool:
    """Mount a small tmpfs at ``path`` (root only); False when this machine does not allow it."""
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return proc.returncode == 0


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True, capture_output=True)


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)
