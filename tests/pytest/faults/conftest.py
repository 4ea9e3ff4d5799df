"""Fixtures for the fault suite: the shared fleet of the five real services (``source_fleet``, scale 0.02,
its own data and ports) and the clean reference run of the whole flow against it (``reference``) — both
session fixtures in tests/pytest/conftest.py, shared with the dbt suite (see tests/pytest/support/world.py) —
plus a factory of isolated workspaces.

The fleet's data is never changed by a test (faults are switched on and off through the admin API and
cleared after each test); cases that need different source data start their own fleet on a copy.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.launcher import SERVICES, Fleet
from tests.pytest.support.workspace import Workspace, make_workspace
from tests.pytest.support.world import PII_KEY, SCALE, Reference

__all__ = ["PII_KEY", "SCALE", "Reference"]  # the fault cases import these from here


@pytest.fixture
def fleet_clean(source_fleet: Fleet) -> Iterator[Fleet]:
    """The shared fleet with faults cleared before and after the test, and every service up."""
    _clear(source_fleet)
    try:
        yield source_fleet
    finally:
        source_fleet.start()  # restarts any service a test stopped (already-running ones are left alone)
        _clear(source_fleet)


def _clear(fl: Fleet) -> None:
    for name in SERVICES:
        if fl.healthy(name):
            fl.admin(name).clear_faults()


@pytest.fixture
def workspace(tmp_path: Path, source_fleet: Fleet, reference: Reference) -> Callable[..., Workspace]:
    """Factory: a fresh workspace on the shared fleet (or on ``fleet_env``), dbt parse cache pre-seeded."""

    def factory(name: str = "ws", fleet_env: dict[str, str] | None = None) -> Workspace:
        return make_workspace(
            tmp_path / name,
            fleet_env or source_fleet.env(),
            PII_KEY,
            seed_target=reference.workspace.root / "target",
        )

    return factory


@pytest.fixture
def data_copy(source_fleet: Fleet, tmp_path: Path) -> Path:
    """A private copy of the fleet's source data, for cases that write hostile records into it."""
    dst = tmp_path / "data-copy"
    shutil.copytree(source_fleet.data_dir, dst)
    return dst
