"""The dbt suite's world: a copy of the shared clean run (tests/pytest/support/world.py: scale 0.02,
extracted and built once per session by `python -m elt run`) with a fleet of its own on a copy of the
source data. dbt costs ~10-20 s per invocation here, so the suite starts from that build and batches
its further calls (see test_dbt_incremental.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from services.launcher import Fleet
from tests.pytest.support.dbt_world import (
    DbtWorld,
    FlowWorld,
    flow_world_from_reference,
    reference_build,
    world_from_reference,
)
from tests.pytest.support.world import Reference


@pytest.fixture(scope="session")
def dbt_world(
    reference: Reference, source_fleet: Fleet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DbtWorld]:
    """Fleet + warehouse + dbt target copied from the clean run; the fleet stops at the end of the session."""
    world = world_from_reference(tmp_path_factory.mktemp("dbt-world"), reference, source_fleet.data_dir)
    try:
        yield world
    finally:
        world.fleet.stop()


@pytest.fixture(scope="session")
def first_build(reference: Reference) -> dict[str, Any]:
    """The `dbt build` of everything on the freshly loaded data (run_results.json of the clean run)."""
    return reference_build(reference)


@pytest.fixture(scope="module")
def flow_world(
    reference: Reference, source_fleet: Fleet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FlowWorld]:
    """The clean run's whole workspace (its recorded build state included) with a fleet of its own: the
    next ``elt run`` of that workspace (tests/pytest/dbt/test_dbt_changed_only.py)."""
    world = flow_world_from_reference(tmp_path_factory.mktemp("flow-world"), reference, source_fleet.data_dir)
    try:
        yield world
    finally:
        world.fleet.stop()
