"""Stopping, across real processes (core/signals.py, ops_log.close_orphans, the lock's dead-holder line):
a stopped command gives its child SIGTERM and a grace period, a child dies with a parent killed by -9,
rows whose process is gone are closed by the next writer, and a lock left by a dead holder is taken at
once with a line saying so."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from core import lock, ops_fallback, ops_log
from tests.pytest.elt.helpers import EltPaths
from tests.pytest.support.paths import REPO
from tests.pytest.support.processes import gone

# A parent running one child through signals.run_child; the child traps SIGTERM and notes it in a file
# before it exits, so the test can tell a SIGTERM with grace from a SIGKILL.
PARENT = textwrap.dedent(
    """
    import sys
    from core import signals
    signals.install()
    child = [sys.executable, "-c", sys.argv[1], sys.argv[2]]
    try:
        code = signals.run_child(child)
    except signals.Interrupted as exc:
        print("parent stopped", exc, flush=True)
        sys.exit(exc.exit_code)
    sys.exit(code)
    """
)
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    def on_term(*_):
        open(sys.argv[1], "w").write("terminated")
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    print(os.getpid(), flush=True)
    time.sleep(120)
    """
)
# Writes a `running` row the way a loader does, says so, and waits to be killed.
ROW_WRITER = textwrap.dedent(
    """
    import duckdb, sys, time
    from core import ops_fallback, ops_log, settings
    from core.lock import warehouse_lock
    record = ops_log.new_run("writer", "extract")
    with warehouse_lock("writer"):
        con = duckdb.connect(str(settings.warehouse_path()))
        ops_fallback.save(con, record)
        con.close()
        print(record.run_id, flush=True)
        time.sleep(120)
    """
)


def _spawn(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _child_pid(parent: subprocess.Popen[str]) -> int:
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line.strip().isdigit(), f"no child pid: {line!r} {parent.stderr.read() if parent.stderr else ''}"
    return int(line)


def test_sigterm_reaches_the_child_with_grace_and_exit_is_143(tmp_path: Path) -> None:
    note = tmp_path / "child-note"
    parent = _spawn(["-c", PARENT, CHILD, str(note)])
    try:
        child = _child_pid(parent)
        parent.send_signal(signal.SIGTERM)
        out, err = parent.communicate(timeout=60)
        assert parent.returncode == 143, out + err
        assert "parent stopped stopped by SIGTERM" in out, out + err
        assert "Traceback" not in err, err
        assert gone(child), "the child outlived its stopped parent"
        assert note.read_text() == "terminated", "the child was killed, not given SIGTERM and time"
    finally:
        parent.kill()


def test_sigint_exits_130_without_a_traceback(tmp_path: Path) -> None:
    parent = _spawn(["-c", PARENT, CHILD, str(tmp_path / "note")])
    try:
        child = _child_pid(parent)
        parent.send_signal(signal.SIGINT)
        out, err = parent.communicate(timeout=60)
        assert parent.returncode == 130, out + err
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
        assert gone(child)
    finally:
        parent.kill()


def test_a_child_dies_with_a_parent_killed_by_sigkill(tmp_path: Path) -> None:
    """Without it a dbt child of a flow killed with -9 ran on, holding the warehouse lock."""
    note = tmp_path / "child-note"
    parent = _spawn(["-c", PARENT, CHILD, str(note)])
    try:
        child = _child_pid(parent)
        parent.kill()
        parent.wait(timeout=10)
        assert gone(child), "the child outlived its parent's kill -9"
        assert note.read_text() == "terminated"
    finally:
        parent.kill()


def _rows(warehouse: Path) -> dict[str, tuple[str, str | None]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute("select run_id, status, error from ops.runs").fetchall()
    return {run_id: (status, error) for run_id, status, error in rows}


def test_the_next_writer_closes_rows_whose_process_is_gone(elt_env: EltPaths) -> None:
    """A writer killed with -9 left its row `running`; the next writer closes it, and leaves the row of
    a writer that still runs as it is."""
    killed = _spawn(["-c", ROW_WRITER])
    assert killed.stdout is not None
    dead_run = killed.stdout.readline().strip()
    assert dead_run, killed.stderr.read() if killed.stderr else ""
    killed.kill()
    killed.wait(timeout=10)
    assert _rows(elt_env.warehouse)[dead_run][0] == "running"
    live = _spawn(["-c", ROW_WRITER])  # the next writer
    try:
        assert live.stdout is not None
        live_run = live.stdout.readline().strip()
        assert live_run, live.stderr.read() if live.stderr else ""
        rows = _rows(elt_env.warehouse)
        assert rows[dead_run][0] == "interrupted", rows
        assert f"pid {killed.pid}" in (rows[dead_run][1] or ""), rows
        assert rows[live_run][0] == "running", rows
    finally:
        live.kill()
        live.wait(timeout=10)
    mine = ops_log.new_run("this test", "extract")  # this process: alive, started before its row
    with duckdb.connect(str(elt_env.warehouse)) as con:
        assert ops_fallback.save(con, mine)
        assert ops_log.close_orphans(con) == 0, "a second pass closes nothing more"
    rows = _rows(elt_env.warehouse)
    assert rows[live_run][0] == "interrupted", rows
    assert rows[mine.run_id][0] == "running", "a live writer's row was closed"


def test_a_row_whose_pid_now_names_a_newer_process_is_closed(elt_env: EltPaths) -> None:
    """The pid of a dead writer can be reused: a process that started after the row is not its writer."""
    newer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = ops_log.new_run("old writer", "dbt")
        record.pid = newer.pid
        record.started_at = "2026-01-01T00:00:00+00:00"
        still = ops_log.new_run("current writer", "dbt")
        still.pid = newer.pid  # started after the process did: its writer, alive
        with duckdb.connect(str(elt_env.warehouse)) as con:
            ops_log.save_run(con, record)
            ops_log.save_run(con, still)
            assert ops_log.close_orphans(con) == 1
        rows = _rows(elt_env.warehouse)
        assert rows[record.run_id][0] == "interrupted"
        assert rows[still.run_id][0] == "running"
    finally:
        newer.kill()
        newer.wait(timeout=10)


HOLDER = textwrap.dedent(
    """
    import time
    from core.lock import warehouse_lock
    with warehouse_lock("a run that will be killed"):
        print("held", flush=True)
        time.sleep(120)
    """
)


def test_a_lock_left_by_a_killed_holder_is_taken_at_once_with_a_line(
    elt_env: EltPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = _spawn(["-c", HOLDER])
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held", holder.stderr.read() if holder.stderr else ""
    holder.kill()
    holder.wait(timeout=10)
    with lock.warehouse_lock("the next run", wait=0.0):  # wait=0: a held lock would raise WarehouseBusy
        pass
    err = capsys.readouterr().err
    assert "took the warehouse lock left by a process that ended without releasing it" in err, err
    assert f"pid {holder.pid}: a run that will be killed" in err, err
    with lock.warehouse_lock("a normal next run", wait=0.0):  # a clean release leaves no such line
        pass
    assert "took the warehouse lock" not in capsys.readouterr().err
    assert os.path.getsize(lock.lock_path()) == 0


# A SIGTERM that arrives while the garbage collector runs a finalizer: raised there, Python would print
# "Exception ignored in ..." with a traceback and lose the stop.
IN_FINALIZER = textwrap.dedent(
    """
    import os, signal, sys, time, weakref
    from core import signals
    signals.install()

    class Session:
        pass

    def close():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # the signal is handled while this finalizer still runs

    try:
        weakref.finalize(Session(), close)  # the object dies at once: its finalizer runs now
        time.sleep(5)
        print("no stop", flush=True)
    except signals.Interrupted as exc:
        print("stopped:", exc, flush=True)
        sys.exit(exc.exit_code)
    """
)


def test_a_signal_inside_a_finalizer_still_stops_the_run_without_a_traceback() -> None:
    out = subprocess.run(
        [sys.executable, "-c", IN_FINALIZER], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 128 + signal.SIGTERM, out.stdout + out.stderr
    assert "stopped: stopped by SIGTERM" in out.stdout, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and "Exception ignored" not in out.stderr, out.stderr


# A SIGTERM while DuckDB runs a query: DuckDB reports it as RuntimeError("Query interrupted").
IN_QUERY = textwrap.dedent(
    """
    import os, signal, sys, threading
    import duckdb
    from core import signals
    signals.install()
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
    try:
        duckdb.connect().execute("select count(*) from range(3000000000) t(a), range(10) u(b)").fetchall()
        print("query finished", flush=True)
    except RuntimeError as exc:
        stop = signals.stop_behind(exc)
        print("stop behind the error:", stop, flush=True)
        sys.exit(stop.exit_code if stop else 1)
    """
)


def test_a_stop_duckdb_reports_as_query_interrupted_is_still_a_stop() -> None:
    out = subprocess.run(
        [sys.executable, "-c", IN_QUERY], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 128 + signal.SIGTERM, out.stdout + out.stderr
    assert "stop behind the error: stopped by SIGTERM" in out.stdout, out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr
