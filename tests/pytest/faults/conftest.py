"""Fixtures for the fault suite: one fleet of the five real services (scale 0.02, its own data and ports),
one clean reference run of the whole flow against it, and a factory of isolated workspaces.

The fleet's data is never changed by a test (faults are switched on and off through the admin API and
cleared after each test); cases that need different source data start their own fleet on a copy.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.launcher import SERVICES, Fleet
from tests.pytest.conftest import free_port_base
from tests.pytest.faults.helpers import TablePrint, Workspace, fingerprint, flow, make_workspace

SCALE = 0.02
PII_KEY = "faults-suite-pii-key-6f1c2d"


@dataclass
class Reference:
    """The clean run every case is compared with."""

    workspace: Workspace
    prints: dict[str, TablePrint]


@pytest.fixture(scope="session")
def source_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("faults-fleet")
    fl = Fleet(run_dir=root / "run", data_dir=root / "data", port_base=free_port_base(), scale=SCALE, seed=42)
    fl.start()
    try:
        yield fl
    finally:
        fl.stop()


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


@pytest.fixture(scope="session")
def reference(source_fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """A clean ``elt run`` on the fleet's data: the state every recovered case must equal."""
    ws = make_workspace(tmp_path_factory.mktemp("faults-reference"), source_fleet.env(), PII_KEY)
    out = flow(ws)
    assert out.returncode == 0, f"the clean reference run failed: {out.describe()}"
    return Reference(ws, fingerprint(ws))


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
