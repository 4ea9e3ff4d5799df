"""Fixtures for the stream suite: one private world (fleet + warehouse) per session, so the events
a test appends never disturb the shared read-only fleet of other suites."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.pytest.support.ports import free_port_base
from tests.pytest.support.stream_world import StreamWorld, make_world


@pytest.fixture(scope="session")
def stream_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamWorld]:
    """Fleet at scale SHOP_STREAM_TEST_SCALE (default 0.02) with events and orders loaded once."""
    scale = float(os.environ.get("SHOP_STREAM_TEST_SCALE", "0.02"))
    world = make_world(tmp_path_factory.mktemp("stream-world"), free_port_base(), scale)
    try:
        yield world
    finally:
        world.fleet.stop()


@pytest.fixture(scope="session")
def stream_world_full(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamWorld]:
    """A world for cases that also run the whole batch flow: scale 0.05 (at 0.02 the generator erases
    no customer, raw_customers.deletions is never created and the batch `dbt build` fails)."""
    world = make_world(tmp_path_factory.mktemp("stream-world-full"), free_port_base(), 0.05)
    try:
        yield world
    finally:
        world.fleet.stop()
