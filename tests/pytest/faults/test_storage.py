"""The warehouse and the exports under storage faults: disk full during load and during publish, a
read-only warehouse, and a warehouse held by another process (a reader, a second writer). Each failed run
must exit non-zero with a message that names the cause, must not move ``exports/current``, and a plain
re-run once the fault is gone must equal a clean run.

Disk full and read-only use a small tmpfs mounted over the workspace folder (needs root and mount
permission; skipped with the reason otherwise).

The failure path itself needs nothing the fault took away: the flow, ``python -m extract`` and
``python -m elt export`` end with their one-line failure and exit 1, never a traceback, and the run log
rows the warehouse could not take are kept in ``<run dir>/ops-fallback.jsonl`` and written to ``ops``
exactly once by the next run that can (core/ops_fallback.py).
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from core import lock, ops_fallback
from publish.verify import verify_version
from tests.pytest.faults.helpers import flow_args, flow_with_action, mount_tmpfs, remount, umount
from tests.pytest.support.fingerprints import assert_matches_clean
from tests.pytest.support.paths import REPO
from tests.pytest.support.workspace import Outcome, Workspace, flow, run
from tests.pytest.support.world import Reference

pytestmark = pytest.mark.slow


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    made: list[Path] = []
    yield made
    for path in reversed(made):
        umount(path)


def _tmpfs(mounts: list[Path], path: Path, size: str) -> None:
    if not mount_tmpfs(path, size):
        pytest.skip(f"cannot mount a tmpfs at {path} here (needs root and mount permission)")
    mounts.append(path)


def _recover(ws: Workspace, reference: Reference, context: str) -> None:
    out = flow(ws)
    assert out.returncode == 0, f"re-run after {context} failed: {out.describe()}"
    assert "Traceback" not in out.output, out.describe()
    assert_matches_clean(reference.prints, ws, context)


class DiskFiller:
    """Keeps the filesystem of ``folder`` full: appends to a file until ENOSPC, then again every few
    milliseconds, so space a failed write gives back (a rolled-back WAL) is taken again at once and
    every later write on that filesystem fails, the run log's included."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "filler"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None

    def start(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._fill()  # full when start returns
        self._thread = threading.Thread(target=self._keep_full, daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        assert self._fd is not None
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9, 1):
            chunk = b"\0" * size
            while True:
                try:
                    if os.write(self._fd, chunk) < size:
                        break
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break

    def _keep_full(self) -> None:
        while not self._stop.wait(0.005):
            self._fill()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.path.unlink(missing_ok=True)


@pytest.fixture
def fillers() -> Iterator[list[DiskFiller]]:
    made: list[DiskFiller] = []
    yield made
    for filler in made:
        filler.stop()


def _assert_fails_cleanly(out: Outcome, *last_line: str) -> None:
    """Exit 1, no traceback anywhere, and the output ends with the command's own failure report: one
    of ``last_line`` (substrings) on the last line that is not an indented detail of it."""
    assert out.returncode == 1, out.describe()
    assert "Traceback" not in out.output, out.describe()
    lines = out.output.rstrip("\n").splitlines()
    heads = [line for line in lines if not line.startswith(" ")]
    assert heads and any(s in heads[-1] for s in last_line), (
        f"the last report is not {last_line}: {out.describe()}"
    )


def _flow_failed(out: Outcome, step: str) -> None:
    _assert_fails_cleanly(out, f"elt run FAILED at step '{step}'")
    assert lines_after_summary(out, step), out.describe()


def lines_after_summary(out: Outcome, step: str) -> list[str]:
    """The summary's own detail lines (the reason first), which must follow its header."""
    lines = out.output.rstrip("\n").splitlines()
    (head,) = [i for i, line in enumerate(lines) if line.startswith(f"elt run FAILED at step '{step}'")]
    return lines[head + 1 :]


def _kept(ws: Workspace) -> list[dict[str, object]]:
    """The records in the workspace's fallback file, in the order they were kept."""
    path = ws.run_dir / ops_fallback.FILE_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _kept_run(kept: list[dict[str, object]], step: str, command: str) -> dict[str, object]:
    """The last record kept for ``step`` of ``command``: it must exist and be final (failed)."""
    mine = [k for k in kept if k["step"] == step and str(k["command"]).startswith(command)]
    assert mine, f"no {step!r} run of {command!r} in the fallback file: {kept}"
    assert mine[-1]["status"] == "failed", mine[-1]
    assert mine[-1]["finished_at"], mine[-1]
    return mine[-1]


def _ops_state(ws: Workspace) -> tuple[list[tuple], list[tuple], list[tuple]]:
    with duckdb.connect(str(ws.warehouse), read_only=True) as con:
        return (
            con.execute("select * from ops.runs order by run_id").fetchall(),
            con.execute("select * from ops.run_tables order by all").fetchall(),
            con.execute("select * from ops.run_inputs order by all").fetchall(),
        )


def _assert_replayed_once(ws: Workspace, kept: list[dict[str, object]]) -> None:
    """Every kept run is in ``ops.runs`` once with its last kept (final) status, the fallback file is
    empty, no run is left ``running``, and no run's tables or inputs are doubled."""
    assert _kept(ws) == [], "the fallback file was not emptied by the run that wrote it to ops"
    last = {str(k["run_id"]): k for k in kept}
    with duckdb.connect(str(ws.warehouse), read_only=True) as con:
        for run_id, record in last.items():
            rows = con.execute(
                "select status, step, error, finished_at from ops.runs where run_id = ?", [run_id]
            ).fetchall()
            assert len(rows) == 1, f"run {run_id} ({record['step']}) is in ops.runs {len(rows)} times"
            status, step, error, finished_at = rows[0]
            assert (status, step) == (record["status"], record["step"]), (rows, record)
            assert status == "failed" and finished_at is not None and error, rows
        running = con.execute("select run_id, step from ops.runs where status = 'running'").fetchall()
        assert running == [], f"runs left 'running' after the replay: {running}"
        doubled = con.execute(
            "select run_id, source, table_name, count(*) from ops.run_tables group by all "
            "having count(*) > 1 union all "
            "select run_id, kind, name, count(*) from ops.run_inputs group by all having count(*) > 1"
        ).fetchall()
        assert doubled == [], f"run_tables / run_inputs rows doubled: {doubled}"


def _replay_again(ws: Workspace, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Put the fallback file back as it was and replay it once more: ``ops`` must not change."""
    before = _ops_state(ws)
    (ws.run_dir / ops_fallback.FILE_NAME).write_text(text)
    monkeypatch.setenv("SHOP_RUN_DIR", str(ws.run_dir))
    monkeypatch.setenv("SHOP_WAREHOUSE", str(ws.warehouse))
    with lock.warehouse_lock("storage test: replay again", wait=30), duckdb.connect(str(ws.warehouse)) as con:
        assert ops_fallback.replay(con) == len(text.splitlines())
    assert _ops_state(ws) == before, "replaying the same records a second time changed ops"


def test_disk_full_during_load(workspace, reference: Reference, fleet_clean, mounts) -> None:
    """The load itself runs out of space (a 3 MB warehouse folder). Whether the run log's own writes
    still fit then depends on what DuckDB gave back, so the checks hold either way: one-line failure,
    and after the re-run the failed flow is in ``ops.runs`` once, failed, nothing left ``running``."""
    ws = workspace("disk-full-load")
    _tmpfs(mounts, ws.warehouse.parent, "3m")
    out = flow(ws)
    _flow_failed(out, "extract")
    assert "No space left on device" in out.output or "out of disk" in out.output.lower(), out.describe()
    assert ws.current_version() is None
    kept = _kept(ws)
    remount(ws.warehouse.parent, "size=512m")
    _recover(ws, reference, "disk full during load")
    _assert_replayed_once(ws, kept)
    with duckdb.connect(str(ws.warehouse), read_only=True) as con:
        flows = con.execute(
            "select status, count(*) from ops.runs where step = 'run' group by all order by all"
        ).fetchall()
    assert flows == [("failed", 1), ("success", 1)], flows


def test_disk_full_for_the_whole_failure_path(
    workspace, reference: Reference, fleet_clean, mounts, fillers, monkeypatch
) -> None:
    """The warehouse folder fills up as the load starts and stays full: every later write there fails,
    the run log's included. The flow, the loader and the export still end with their one-line failure;
    what they could not log is in the fallback file, and the next run writes it to ``ops`` once."""
    ws = workspace("disk-full-path")
    _tmpfs(mounts, ws.warehouse.parent, "16m")
    filler = DiskFiller(ws.warehouse.parent)
    fillers.append(filler)
    out, filled = flow_with_action(ws, r"INFO elt\.flow: extract:", filler.start)
    assert filled, out.describe()
    _flow_failed(out, "extract")
    assert "No space left on device" in out.output, out.describe()
    assert ws.current_version() is None

    loader = run(ws, ["-m", "extract", "catalog"])
    _assert_fails_cleanly(loader, "ERROR extract: warehouse", "INFO extract: summary: FAILED catalog")
    export = run(ws, ["-m", "elt", "export"])
    _assert_fails_cleanly(export, "error: ")

    kept = _kept(ws)
    flow_run = _kept_run(kept, "run", "python -m elt run")
    assert "step 'extract' failed" in str(flow_run["error"]), flow_run
    _kept_run(kept, "extract", "python -m elt run")  # the flow's extract step
    _kept_run(kept, "export", "python -m elt export")
    text = (ws.run_dir / ops_fallback.FILE_NAME).read_text()

    filler.stop()
    remount(ws.warehouse.parent, "size=512m")
    _recover(ws, reference, "disk full for the whole failure path")
    _assert_replayed_once(ws, kept)
    _replay_again(ws, text, monkeypatch)


def test_disk_full_during_publish(workspace, reference: Reference, fleet_clean, mounts) -> None:
    ws = workspace("disk-full-publish")
    _tmpfs(mounts, ws.exports, "64m")
    first = flow(ws)
    assert first.returncode == 0, first.describe()
    before = ws.current_version()
    st = os.statvfs(ws.exports)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize  # one version, as tmpfs counts it
    remount(ws.exports, f"size={(used + used // 2) // 1024 + 1}k")  # room for half of a second one
    second = run(ws, flow_args(full_build=True))  # nothing is new: without it publish would be skipped
    assert second.returncode == 1, second.describe()
    assert "elt run FAILED at step 'publish'" in second.output, second.describe()
    assert "No space left on device" in second.output, second.describe()
    assert ws.current_version() == before, "a publish that ran out of space moved exports/current"
    assert verify_version(ws.exports / before) == [], "the current version was damaged by the failed publish"
    remount(ws.exports, "size=512m")
    _recover(ws, reference, "disk full during publish")


def test_read_only_warehouse(workspace, reference: Reference, fleet_clean, mounts) -> None:
    """Nothing can be written next to the warehouse, not even its lock file: every command says so in
    one line, their runs are kept in the fallback file and written to ``ops`` once it is writable."""
    ws = workspace("read-only")
    _tmpfs(mounts, ws.warehouse.parent, "512m")
    remount(ws.warehouse.parent, "ro")
    out = flow(ws)
    _flow_failed(out, "start")
    assert "Read-only file system" in lines_after_summary(out, "start")[0], out.describe()

    loader = run(ws, ["-m", "extract", "catalog"])
    _assert_fails_cleanly(loader, "Read-only file system")
    export = run(ws, ["-m", "elt", "export"])
    _assert_fails_cleanly(export, "Read-only file system")

    kept = _kept(ws)
    _kept_run(kept, "run", "python -m elt run")
    _kept_run(kept, "extract", "python -m extract catalog")

    remount(ws.warehouse.parent, "rw")
    _recover(ws, reference, "read-only warehouse")
    _assert_replayed_once(ws, kept)


def test_run_log_unwritable_everywhere(workspace, reference: Reference, fleet_clean, mounts) -> None:
    """Warehouse folder and run folder both read-only: the run cannot be recorded anywhere, and one
    line on stderr says so, before the flow's one-line failure."""
    ws = workspace("nowhere")
    _tmpfs(mounts, ws.warehouse.parent, "16m")
    _tmpfs(mounts, ws.run_dir, "16m")
    remount(ws.warehouse.parent, "ro")
    remount(ws.run_dir, "ro")
    out = flow(ws)
    _flow_failed(out, "start")
    unrecorded = [line for line in out.output.splitlines() if "is not recorded" in line]
    assert len(unrecorded) == 1, out.describe()
    assert ops_fallback.FILE_NAME in unrecorded[0] and "Read-only file system" in unrecorded[0], unrecorded


def _holder(ws: Workspace, code: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, env=ws.env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_warehouse_held_by_a_reader(workspace, reference: Reference, fleet_clean) -> None:
    ws = workspace("reader")
    assert run(ws, ["-m", "extract", "catalog"]).returncode == 0  # the warehouse file exists
    reader = _holder(
        ws,
        "import duckdb, os, sys, time; c = duckdb.connect(os.environ['SHOP_WAREHOUSE'], read_only=True); "
        "print('holding', flush=True); time.sleep(600)",
    )
    try:
        out = flow(ws)
    finally:
        reader.kill()
        reader.wait()
    assert out.returncode == 1, out.describe()
    assert "elt run FAILED" in out.output and "lock" in out.output.lower(), out.describe()
    assert ws.current_version() is None
    _recover(ws, reference, "warehouse held by a reader")


def test_warehouse_held_by_a_second_writer(workspace, reference: Reference, fleet_clean) -> None:
    ws = workspace("writer")
    ws.env["SHOP_LOCK_WAIT"] = "2"
    writer = _holder(
        ws,
        "import time; from core.lock import warehouse_lock\n"
        "with warehouse_lock('faults-suite second writer'):\n"
        "    print('holding', flush=True); time.sleep(600)",
    )
    try:
        out = flow(ws)
    finally:
        writer.kill()
        writer.wait()
    assert out.returncode == 1, out.describe()
    assert "warehouse is locked: already running" in out.output, out.describe()
    assert f"pid {writer.pid}: faults-suite second writer" in out.output, out.describe()
    _recover(ws, reference, "a second writer held the lock")
