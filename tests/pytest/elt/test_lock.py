"""The warehouse lock across real processes: a second writer is refused with the holder named, a
waiter waits, a killed holder releases the lock, and a child handed the lock runs nested."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core import lock
from core.lock import WarehouseBusy, warehouse_lock
from tests.pytest.support.paths import REPO

HOLDER = textwrap.dedent(
    """
    import sys, time
    from core.lock import warehouse_lock
    with warehouse_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
    print("released", flush=True)
    """
)

TRY_LOCK = textwrap.dedent(
    """
    import sys
    from core.lock import WarehouseBusy, warehouse_lock
    wait = float(sys.argv[1]) if len(sys.argv) > 1 else None
    try:
        with warehouse_lock("child try", wait=wait):
            print("ACQUIRED", flush=True)
    except WarehouseBusy as exc:
        print("BUSY", exc, flush=True)
        sys.exit(3)
    """
)


@pytest.fixture()
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    wh = tmp_path / "wh" / "shop.duckdb"
    monkeypatch.setenv("SHOP_WAREHOUSE", str(wh))
    monkeypatch.delenv(lock.INHERITED_FD_ENV, raising=False)
    return wh


def _start_holder(owner: str, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, owner, str(seconds)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def _try_lock(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", TRY_LOCK, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


def test_lock_file_sits_next_to_warehouse(warehouse: Path) -> None:
    with warehouse_lock("test") as path:
        assert path == warehouse.with_name("shop.duckdb.lock")
        assert path.read_text().strip() == f"pid {os.getpid()}: test"


def test_second_process_gets_clear_error_naming_holder(warehouse: Path) -> None:
    holder = _start_holder("extract customers --full-refresh", 30)
    try:
        result = _try_lock()
        assert result.returncode == 3, result.stderr
        assert "BUSY warehouse is locked: already running" in result.stdout
        assert f"pid {holder.pid}: extract customers --full-refresh" in result.stdout
        # and in this process too (flock conflicts between processes, not re-entrancy)
        with pytest.raises(WarehouseBusy, match=f"pid {holder.pid}"), warehouse_lock("me"):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_wait_waits_for_the_holder_to_finish(warehouse: Path) -> None:
    holder = _start_holder("dbt build", 1.5)
    try:
        result = _try_lock("30")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ACQUIRED" in result.stdout
        assert "waiting up to 30s for the warehouse lock held by" in result.stderr
        assert f"pid {holder.pid}: dbt build" in result.stderr
        assert holder.wait(timeout=30) == 0
    finally:
        holder.kill()
        holder.wait()


def test_bounded_wait_gives_up_with_clear_error(warehouse: Path) -> None:
    holder = _start_holder("export", 60)
    try:
        result = _try_lock("0.5")
        assert result.returncode == 3
        assert f"pid {holder.pid}: export" in result.stdout
    finally:
        holder.kill()
        holder.wait()


def test_killed_holder_releases_the_lock(warehouse: Path) -> None:
    holder = _start_holder("stuck loader", 600)
    assert _try_lock().returncode == 3
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with warehouse_lock("after kill") as path:
        assert path.read_text().strip() == f"pid {os.getpid()}: after kill"


def test_reentrant_in_one_process(warehouse: Path) -> None:
    with warehouse_lock("outer"), warehouse_lock("inner"):
        assert lock.held_fd() is not None
    assert lock.held_fd() is None
    # released for other processes afterwards
    assert _try_lock().returncode == 0


def test_child_handed_the_lock_runs_nested_and_others_stay_out(warehouse: Path) -> None:
    with warehouse_lock("elt run: extract"):
        fd = lock.held_fd()
        assert fd is not None
        handed = _try_lock(env=lock.child_env(), pass_fds=(fd,))
        assert handed.returncode == 0, handed.stdout + handed.stderr
        assert "ACQUIRED" in handed.stdout
        stranger = _try_lock(env=lock.child_env({**os.environ, lock.INHERITED_FD_ENV: str(fd)}))
        # without the fd actually passed, the variable names nothing valid: refused
        assert stranger.returncode == 3
        assert f"pid {os.getpid()}: elt run: extract" in stranger.stdout
    # still held by nobody once we leave, even though the child shared our lock
    assert _try_lock().returncode == 0


def test_waiters_take_turns(warehouse: Path) -> None:
    """Several writers with a bounded wait all get through, one at a time."""
    script = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from core.lock import warehouse_lock
        log = Path(sys.argv[1])
        with warehouse_lock("writer", wait=60):
            with log.open("a") as f:
                f.write("in\\n")
            time.sleep(0.3)
            with log.open("a") as f:
                f.write("out\\n")
        """
    )
    log = warehouse.parent / "turns.log"
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(log)], cwd=REPO) for _ in range(3)]
    for p in procs:
        assert p.wait(timeout=60) == 0
    assert log.read_text().split() == ["in", "out"] * 3


def test_a_full_disk_does_not_stop_the_lock_only_its_holder_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The holder's note is information: on a full filesystem the lock is still taken (and refuses a
    second writer), so the step's own disk-full error is what the operator sees, not the lock's."""
    folder = tmp_path / "full"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root and mount permission)")
    try:
        monkeypatch.setenv("SHOP_WAREHOUSE", str(folder / "shop.duckdb"))
        monkeypatch.delenv(lock.INHERITED_FD_ENV, raising=False)
        filler = folder / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with pytest.raises(OSError) as full:
                while True:
                    os.write(fd, b"x" * 4096)
            assert full.value.errno == errno.ENOSPC
        finally:
            os.close(fd)
        with warehouse_lock("full disk"):
            assert "could not write the lock holder's name" in capsys.readouterr().err
            other = subprocess.run(
                [sys.executable, "-c", TRY_LOCK],
                cwd=REPO,
                env={**os.environ, "SHOP_WAREHOUSE": str(folder / "shop.duckdb")},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert other.returncode == 3 and "BUSY" in other.stdout, other.stdout + other.stderr
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
