"""The warehouse and the exports under storage faults: disk full during load and during publish, a
read-only warehouse, and a warehouse held by another process (a reader, a second writer). Each failed run
must exit non-zero with a message that names the cause, must not move ``exports/current``, and a plain
re-run once the fault is gone must equal a clean run.

Disk full and read-only use a small tmpfs mounted over the workspace folder (needs root and mount
permission; skipped with the reason otherwise).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from elt.verify import verify_version
from tests.pytest.faults.conftest import Reference
from tests.pytest.faults.helpers import (
    REPO,
    Workspace,
    assert_matches_clean,
    flow,
    mount_tmpfs,
    remount,
    run,
    umount,
)

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
    assert_matches_clean(reference.prints, ws, context)


def test_disk_full_during_load(workspace, reference: Reference, fleet_clean, mounts) -> None:
    ws = workspace("disk-full-load")
    _tmpfs(mounts, ws.warehouse.parent, "3m")
    out = flow(ws)
    assert out.returncode == 1, out.describe()
    assert "elt run FAILED at step 'extract'" in out.output, out.describe()
    assert "No space left on device" in out.output or "out of disk" in out.output.lower(), out.describe()
    assert ws.current_version() is None
    remount(ws.warehouse.parent, "size=512m")
    _recover(ws, reference, "disk full during load")


def test_disk_full_during_publish(workspace, reference: Reference, fleet_clean, mounts) -> None:
    ws = workspace("disk-full-publish")
    _tmpfs(mounts, ws.exports, "64m")
    first = flow(ws)
    assert first.returncode == 0, first.describe()
    before = ws.current_version()
    st = os.statvfs(ws.exports)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize  # one version, as tmpfs counts it
    remount(ws.exports, f"size={(used + used // 2) // 1024 + 1}k")  # room for half of a second one
    second = flow(ws)
    assert second.returncode == 1, second.describe()
    assert "elt run FAILED at step 'publish'" in second.output, second.describe()
    assert "No space left on device" in second.output, second.describe()
    assert ws.current_version() == before, "a publish that ran out of space moved exports/current"
    assert verify_version(ws.exports / before) == [], "the current version was damaged by the failed publish"
    remount(ws.exports, "size=512m")
    _recover(ws, reference, "disk full during publish")


def test_read_only_warehouse(workspace, reference: Reference, fleet_clean, mounts) -> None:
    ws = workspace("read-only")
    _tmpfs(mounts, ws.warehouse.parent, "512m")
    remount(ws.warehouse.parent, "ro")
    out = flow(ws)
    assert out.returncode == 1, out.describe()
    assert "Read-only file system" in out.output, out.describe()
    assert "elt run FAILED" in out.output, out.describe()
    remount(ws.warehouse.parent, "rw")
    _recover(ws, reference, "read-only warehouse")


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
        "import time; from elt.lock import warehouse_lock\n"
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
