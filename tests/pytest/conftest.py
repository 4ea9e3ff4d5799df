"""Shared fixtures: one small fleet of the five real services on loopback, for every suite that needs it.

The fleet runs on a random free port base, with its data and run folders in pytest's tmp dir, so test runs
never touch `run/`, `data/` or ports 8101-8105 (someone's `make services` may be using them).
Scale comes from SHOP_TEST_SCALE (default 0.05). Area suites add their own fixtures in their own
conftest.py files.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.launcher import SERVICES, Fleet


def free_port_base(attempts: int = 50) -> int:
    """A base whose base+1..base+5 are all free on 127.0.0.1 right now."""
    for _ in range(attempts):
        base = random.randrange(20000, 60000, 10)
        socks = []
        try:
            for offset in range(1, len(SERVICES) + 1):
                s = socket.socket()
                s.bind(("127.0.0.1", base + offset))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range found")


def test_scale() -> float:
    return float(os.environ.get("SHOP_TEST_SCALE", "0.05"))


test_scale.__test__ = False  # a helper, not a test


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """The shared fleet (scale SHOP_TEST_SCALE, seed 42), started once per session, stopped at the end.

    Treat its data as read-only: suites that change data should start their own fleet (see
    `make_fleet`) on a copy, so other suites keep seeing the generated state.
    """
    root = tmp_path_factory.mktemp("fleet")
    fl = Fleet(
        run_dir=root / "run", data_dir=root / "data", port_base=free_port_base(), scale=test_scale(), seed=42
    )
    fl.start()
    try:
        yield fl
    finally:
        fl.stop()


@pytest.fixture(scope="session")
def fleet_env(fleet: Fleet) -> dict[str, str]:
    """The fleet's fleet.env as a dict (base URLs, credentials, admin token), ready for a loader's env."""
    return fleet.env()


def clear_fleet_faults(fl: Fleet) -> None:
    """Remove every fault and reset request stats on all five services."""
    for name in SERVICES:
        admin = fl.admin(name)
        admin.clear_faults()
        admin.reset_stats()


@pytest.fixture
def no_faults(fleet: Fleet) -> Iterator[Fleet]:
    """The shared fleet with faults cleared before and after the test (so a failing test leaks none)."""
    clear_fleet_faults(fleet)
    try:
        yield fleet
    finally:
        clear_fleet_faults(fleet)


@pytest.fixture
def make_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Fleet]]:
    """Factory for extra fleets (own run dir and ports); all are stopped when the test ends.

    `make_fleet(data_dir=...)` reuses existing data (services only read it); pass other Fleet keyword
    arguments (faults, token_ttl, scale) as needed.
    """
    started: list[Fleet] = []

    def factory(data_dir: Path | None = None, start: bool = True, **kwargs: object) -> Fleet:
        root = tmp_path_factory.mktemp("extra-fleet")
        kwargs.setdefault("scale", test_scale())
        kwargs.setdefault("seed", 42)
        fl = Fleet(
            run_dir=root / "run", data_dir=data_dir or root / "data", port_base=free_port_base(), **kwargs
        )
        started.append(fl)
        if start:
            fl.start()
        return fl

    yield factory
    for fl in started:
        fl.stop()
