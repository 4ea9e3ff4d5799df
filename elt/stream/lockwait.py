"""Take the warehouse lock for one micro-batch: wait our turn (bounded, logged), never raise raw.

``core.lock.warehouse_lock(wait=...)`` blocks silently after one message. The stream needs more while
it waits for a batch step (``python -m elt run`` may hold the lock for minutes): a log line every
few seconds naming the holder, and a way out on a second stop signal. So it polls the non-waiting
form itself.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

from core.lock import WarehouseBusy, lock_path, warehouse_lock

log = logging.getLogger("elt.stream.lock")

POLL_SECONDS = 0.1
LOG_EVERY_SECONDS = 10.0


class LockTimeout(RuntimeError):
    """The lock stayed busy for the whole bounded wait (or the wait was abandoned)."""


def holder() -> str:
    """Who holds the lock, as written in the lock file ("pid N: command")."""
    try:
        return lock_path().read_text(errors="replace").strip() or "unknown holder"
    except OSError:
        return "unknown holder"


@contextlib.contextmanager
def batch_lock(owner: str, wait: float, abandon: Callable[[], bool]) -> Iterator[float]:
    """Hold the lock for the block; yields the seconds spent waiting for it.

    Raises ``LockTimeout`` after ``wait`` seconds, or as soon as ``abandon()`` turns true.
    """
    started = time.monotonic()
    next_log = started
    while True:
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(warehouse_lock(owner))
        except WarehouseBusy:
            now = time.monotonic()
            waited = now - started
            if waited >= wait:
                raise LockTimeout(f"warehouse still locked after {waited:.0f}s by {holder()}") from None
            if abandon():
                raise LockTimeout("stop requested while waiting for the warehouse lock") from None
            if now >= next_log:
                log.info(
                    "waiting for the warehouse lock (held by %s; %.0fs so far, up to %.0fs)",
                    holder(),
                    waited,
                    wait,
                )
                next_log = now + LOG_EVERY_SECONDS
            time.sleep(POLL_SECONDS)
            continue
        with stack:
            waited = time.monotonic() - started
            if waited >= 1.0:
                log.info("got the warehouse lock after %.1fs", waited)
            yield waited
        return
