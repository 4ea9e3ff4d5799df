"""Fleets of the five shop services for the suites: each on a free port base of its own (two xdist
workers, or someone's ``make services``, never collide), with its run folder and data where the caller
says, and always stopped when the test or session that started it ends."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from services.launcher import SERVICES, Fleet
from tests.pytest.support.ports import free_port_base


def test_scale() -> float:
    """The shared fleet's scale (``SHOP_TEST_SCALE``, default 0.05)."""
    return float(os.environ.get("SHOP_TEST_SCALE", "0.05"))


test_scale.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def new_fleet(run_dir: Path, data_dir: Path, **kwargs: Any) -> Fleet:
    """A fleet (not started) on a free port base unless ``port_base`` is given; ``kwargs`` go to ``Fleet``."""
    kwargs.setdefault("port_base", free_port_base())
    return Fleet(run_dir=run_dir, data_dir=data_dir, **kwargs)


@contextmanager
def running_fleet(run_dir: Path, data_dir: Path, **kwargs: Any) -> Iterator[Fleet]:
    """A started ``new_fleet``, stopped on the way out whatever happened."""
    fl = new_fleet(run_dir, data_dir, **kwargs)
    fl.start()
    try:
        yield fl
    finally:
        fl.stop()


def clear_fleet_faults(fl: Fleet) -> None:
    """Remove every fault and reset request stats on all five services."""
    for name in SERVICES:
        admin = fl.admin(name)
        admin.clear_faults()
        admin.reset_stats()
