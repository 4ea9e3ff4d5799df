"""The project-wide single-writer lock on the warehouse.

DuckDB allows one writing process per file and fails a second one with a terse "Could not set lock"
error. Every writer (loaders, dbt, publisher, the orchestrator) takes this lock first, so a second
writer gets a clear message naming the holder's pid and command instead, or waits its turn.

The lock is an ``flock`` on ``<warehouse>.lock``: the kernel releases it when the holder dies
(even on kill -9), so there is never a stale lock to clean up by hand. The holder's pid and command
are written inside purely for the error message.

A process holding the lock can hand it to a child process (``lock_env`` / ``pass_fds``): the child
inherits the same open file description, and its own ``warehouse_lock`` call sees that and runs
nested instead of deadlocking against its parent. This lets ``python -m elt run`` hold the lock per
step while the step itself (``python -m extract``, dbt) also guards itself when run alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from core import settings

# Environment variable naming an inherited file descriptor that holds the lock.
INHERITED_FD_ENV = "SHOP_WAREHOUSE_LOCK_FD"
_POLL_SECONDS = 0.2

# Locks this process holds, by lock path -> [fd, depth], so nested calls in one process are re-entrant.
_held: dict[str, list[int]] = {}


class WarehouseBusy(RuntimeError):
    """Another process holds the warehouse lock (and we did not, or could not, wait long enough)."""


def lock_path(warehouse: Path | None = None) -> Path:
    """The lock file next to the warehouse: ``<warehouse>.lock``."""
    wh = warehouse or settings.warehouse_path()
    return wh.with_name(wh.name + ".lock")


def _holder_info(path: Path) -> str:
    """What the holder wrote into the lock file ("pid N: command"), best effort."""
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        text = ""
    return text or "pid unknown: holder has not written its name yet"


def _inherited_fd(path: Path) -> int | None:
    """The fd handed down by a parent holding this very lock file, if any."""
    raw = os.environ.get(INHERITED_FD_ENV)
    if not raw:
        return None
    try:
        fd = int(raw)
        fst = os.fstat(fd)
        pst = path.stat()
    except (ValueError, OSError):
        return None
    if (fst.st_dev, fst.st_ino) != (pst.st_dev, pst.st_ino):
        return None
    return fd


def _busy_message(path: Path) -> str:
    return (
        f"warehouse is locked: already running ({_holder_info(path)}); lock file {path}. "
        "Wait for it to finish (or pass a wait) and retry."
    )


@contextlib.contextmanager
def warehouse_lock(owner: str, wait: float | None = None) -> Iterator[Path]:
    """Hold the warehouse write lock for the ``with`` block.

    ``owner`` is a short description (e.g. ``"extract customers"``) written with the pid into the
    lock file. Without ``wait`` a held lock raises ``WarehouseBusy`` at once; with ``wait`` it polls
    up to that many seconds, printing once who holds it, then raises. Yields the lock file path.
    """
    path = lock_path()
    key = str(path)
    if key in _held:  # re-entrant within one process
        _held[key][1] += 1
        try:
            yield path
        finally:
            _held[key][1] -= 1
        return
    inherited = _inherited_fd(path)
    if inherited is not None:  # a parent holds it and handed it to us: confirm, then run nested
        try:
            fcntl.flock(inherited, fcntl.LOCK_EX | fcntl.LOCK_NB)  # no-op on our shared description
        except BlockingIOError:
            inherited = None  # the parent let go and someone else took it: lock normally below
    if inherited is not None:
        _held[key] = [inherited, 1]
        try:
            yield path
        finally:
            del _held[key]
        return

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, wait)
        _note_dead_holder(fd, path)
        _write_holder_note(fd, owner)
        _held[key] = [fd, 1]
        try:
            yield path
        finally:
            del _held[key]
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _write_holder_note(fd: int, owner: str) -> None:
    """Write who holds the lock into the lock file, for the waiting side's messages. The note is only
    information (the ``flock`` is the lock): on a full or read-only disk the run goes on without it, so
    the step's own storage error, which says what to do, is what the operator sees."""
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {owner}\n".encode(), 0)
    except OSError as exc:
        print(
            f"note: could not write the lock holder's name into the lock file ({exc.strerror}); "
            "the lock is held all the same",
            file=sys.stderr,
            flush=True,
        )


def _acquire(fd: int, path: Path, wait: float | None) -> None:
    """Take the flock, polling up to ``wait`` seconds; raise ``WarehouseBusy`` with the holder named."""
    deadline = None if wait is None else time.monotonic() + wait
    announced = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if deadline is None or time.monotonic() >= deadline:
                raise WarehouseBusy(_busy_message(path)) from None
            if not announced:
                print(
                    f"waiting up to {wait:.0f}s for the warehouse lock held by {_holder_info(path)}",
                    file=sys.stderr,
                    flush=True,
                )
                announced = True
            time.sleep(min(_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def _note_dead_holder(fd: int, path: Path) -> None:
    """Say so when the lock we just took was left by a holder that died without releasing it.

    A holder empties the file when it lets go, so a name still in it means that process ended holding
    the lock (kill -9, a crash). The kernel released the ``flock`` with its last open descriptor, so the
    lock is taken at once; this line only tells the operator what happened to the previous run."""
    try:
        left = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return
    if left:
        print(
            f"took the warehouse lock left by a process that ended without releasing it ({left})",
            file=sys.stderr,
            flush=True,
        )


def held_fd() -> int | None:
    """The fd of the warehouse lock this process holds (for handing it to a child), else None."""
    entry = _held.get(str(lock_path()))
    return entry[0] if entry else None


def child_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment for a child process that should run under the lock we hold.

    Pair it with ``subprocess.run(..., pass_fds=(held_fd(),))``. Without a held lock the variable is
    removed so the child takes the lock itself.
    """
    env = dict(os.environ if base is None else base)
    fd = held_fd()
    if fd is None:
        env.pop(INHERITED_FD_ENV, None)
    else:
        env[INHERITED_FD_ENV] = str(fd)
    return env
