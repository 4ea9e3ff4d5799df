"""Waiting for a process to end, as the signal and kill tests need it: ended means gone or a zombie (a
child reparented to an init that has not reaped it yet has still stopped running)."""

from __future__ import annotations

import time

import psutil


def gone(pid: int, within: float = 20.0) -> bool:
    """True once ``pid`` has ended (or is a zombie) within ``within`` seconds, else False."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False
