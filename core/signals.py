"""Stopping on SIGTERM and SIGINT: what schedulers, systemd, docker and Ctrl-C send.

Why the project handles them itself: Python's default SIGTERM ends a process on the spot, without
``finally`` blocks. A stopped run then left its ``ops.runs`` rows ``running`` for ever, its child
processes (a loader, dbt) running on with the warehouse lock they inherited, and the fleet it started
up. With ``install()`` in each command's ``main``:

* the first SIGTERM or SIGINT raises ``Interrupted`` in the main thread. It derives from
  ``KeyboardInterrupt`` (a ``BaseException``), so ``except Exception`` never swallows it, and dlt treats
  it as the Ctrl-C it already handles; ``finally`` blocks run, and the run log closes its rows as
  ``interrupted``;
* callbacks registered with ``on_stop`` run at once (the loader sets dlt's own stop flag there, so its
  worker threads stop at their next item, and signals its forked children);
* a child started with ``run_child`` (or stopped with ``stop_child``) gets SIGTERM and a grace period
  before SIGKILL, never an immediate SIGKILL (which is what ``subprocess.run`` does on an exception:
  the child could not close its own rows); children also get SIGTERM from the kernel when their
  parent dies, even by kill -9 (``die_with_parent``), so none outlives the run holding the lock;
* whatever the cleanup does, the process exits within the grace period plus a margin (a watchdog),
  with 128 + the signal number (143 for SIGTERM, 130 for SIGINT);
* later signals while stopping are noted, not raised again: a group signal (the whole process group
  gets it) plus a parent forwarding it must not break the cleanup half-way.

Rows that a process could not close (kill -9, the watchdog) are closed by the next writer
(``ops_log.close_orphans``).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("elt.signals")

GRACE_ENV = "SHOP_STOP_GRACE_SECONDS"
DEFAULT_GRACE = 30.0
_WATCHDOG_MARGIN = 15.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h

_received: int = 0
_callbacks: list[Callable[[int], None]] = []
_stopping = threading.Event()  # wakes ``sleep`` in every thread


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM or SIGINT); ``exit_code`` is 128 + the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def grace_seconds() -> float:
    """How long a stopping process gives its children (``SHOP_STOP_GRACE_SECONDS``, default 30)."""
    try:
        return max(0.0, float(os.environ.get(GRACE_ENV) or DEFAULT_GRACE))
    except ValueError:
        return DEFAULT_GRACE


def received() -> int:
    """The signal that asked this process to stop, or 0."""
    return _received


def stop_requested() -> bool:
    return _received != 0


def raise_if_stopping() -> None:
    """Raise ``Interrupted`` in the calling thread when a stop was asked (for worker threads' loops)."""
    if _received:
        raise Interrupted(_received)


def sleep(seconds: float) -> None:
    """``time.sleep`` that a stop cuts short (a retry backoff must not hold a stopping run), then raises
    ``Interrupted`` in the calling thread if a stop was asked."""
    _stopping.wait(seconds)
    raise_if_stopping()


def on_stop(callback: Callable[[int], None]) -> None:
    """Run ``callback(signum)`` when the first stop signal arrives (in the main thread, at once)."""
    _callbacks.append(callback)


def _watchdog(signum: int) -> None:
    seconds = grace_seconds() + _WATCHDOG_MARGIN

    def expire() -> None:
        _write_stderr(f"still stopping after {seconds:.0f}s: exiting now (the next run closes its rows)\n")
        os._exit(128 + signum)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def _write_stderr(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.write(sys.stderr.fileno(), text.encode("utf-8", "replace"))


def begin_stop(signum: int) -> bool:
    """Start stopping for ``signum``: remember it, arm the watchdog, run the ``on_stop`` callbacks.
    False when already stopping. The handler calls it; so does code that learns of a signal someone
    else's handler took (dlt's, during a load in the main thread)."""
    global _received
    if _received:
        return False
    _received = signum
    _stopping.set()
    _watchdog(signum)
    for callback in list(_callbacks):
        try:
            callback(signum)
        except Exception:  # a callback must not turn the stop into a traceback
            log.debug("stop callback failed", exc_info=True)
    return True


_raise_pending = False  # the first signal came inside a finalizer: deliver it again, then raise
_REDELIVER_SECONDS = 0.05


def _in_finalizer(frame: Any) -> bool:
    """True when ``frame`` runs inside a ``__del__`` or a ``weakref.finalize`` callback.

    Why: Python swallows an exception raised there ("Exception ignored in: <finalize object ...>" and a
    traceback on stderr), so ``Interrupted`` would be lost and the run would print a traceback (seen in
    make test, a SIGTERM landing while the garbage collector ran a requests session's finalizer)."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__del__" or (
            code.co_name == "__call__" and code.co_filename.endswith("weakref.py")
        ):
            return True
        frame = frame.f_back
    return False


def stop_behind(exc: BaseException) -> Interrupted | None:
    """The stop hidden behind a library's error, when one is under way; else None.

    Why: DuckDB catches the ``Interrupted`` our handler raises while a query runs, interrupts the query
    and raises ``RuntimeError("Query interrupted")`` instead, so an ``except Interrupted`` never sees the
    stop and the command ended with a traceback (seen in make test: SIGTERM during the loader's first
    ``ops.runs`` write). Top-level handlers ask this before reporting a RuntimeError."""
    if _received and isinstance(exc, RuntimeError) and "interrupted" in str(exc).lower():
        return Interrupted(_received)
    return None


def _handler(signum: int, frame: Any) -> None:
    global _raise_pending
    first = begin_stop(signum)  # a second signal while stopping must not interrupt the cleanup
    if not (first or _raise_pending):
        return
    if _in_finalizer(frame):
        _raise_pending = True
        redeliver = threading.Timer(
            _REDELIVER_SECONDS, signal.pthread_kill, (threading.main_thread().ident, signum)
        )
        redeliver.daemon = True
        redeliver.start()
        return
    _raise_pending = False
    raise Interrupted(signum)


def install() -> None:
    """Handle SIGTERM and SIGINT as described above (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _handler)


def die_with_parent() -> None:
    """Ask the kernel to send this process SIGTERM when its parent dies (Linux ``PR_SET_PDEATHSIG``).

    For ``preexec_fn`` of a child and for a forked child. Without it a child of a process killed with
    kill -9 ran on, holding the warehouse lock it inherited. Best effort off Linux.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return


def stop_child(proc: subprocess.Popen[Any], grace: float | None = None) -> int:
    """SIGTERM ``proc`` (unless it has ended), wait up to ``grace`` seconds, then SIGKILL; its exit code."""
    grace = grace_seconds() if grace is None else grace
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            log.warning("pid %d did not stop within %.0fs of SIGTERM: killing it", proc.pid, grace)
            proc.kill()
        except Interrupted:  # a repeat signal while waiting: do not leave the child behind
            proc.kill()
    return proc.wait()


def run_child(args: Sequence[str], **popen: Any) -> int:
    """Like ``subprocess.run(args, **popen).returncode``, but a child that is stopped with us gets
    SIGTERM and a grace period (``stop_child``) instead of SIGKILL, and dies with us (``die_with_parent``)."""
    with subprocess.Popen(args, preexec_fn=die_with_parent, **popen) as proc:
        try:
            return proc.wait()
        except BaseException:
            stop_child(proc)
            raise
