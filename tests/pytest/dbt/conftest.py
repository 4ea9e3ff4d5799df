"""The dbt suite's world: one private fleet (scale SHOP_TEST_SCALE, default 0.05), loaded once with
`python -m extract` and built once with `dbt build`. dbt costs ~10-20 s per invocation here, so the
suite shares this build and batches its further calls (see test_incremental.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.pytest.dbt.dbt_world import DbtWorld, start_world


@pytest.fixture(scope="session")
def dbt_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbtWorld]:
    """A fleet + warehouse, extracted once; the fleet is stopped at the end of the session."""
    scale = float(os.environ.get("SHOP_TEST_SCALE", "0.05"))
    world = start_world(tmp_path_factory.mktemp("dbt-world"), scale)
    try:
        world.extract()
        yield world
    finally:
        world.fleet.stop()


@pytest.fixture(scope="session")
def first_build(dbt_world: DbtWorld) -> dict[str, Any]:
    """`dbt build` of everything on the freshly loaded data (run_results.json)."""
    return dbt_world.dbt("build")
