"""Shared fixtures: one small fleet of the five real services on loopback, for every suite that needs it.

The fleet runs on a random free port base, with its data and run folders in pytest's tmp dir, so test runs
never touch `run/`, `data/` or ports 8101-8105 (someone's `make services` may be using them).
Scale comes from SHOP_TEST_SCALE (default 0.05). Area suites add their own fixtures in their own
conftest.py files.

Scheduling (`make test` runs two pytest-xdist workers, `--dist loadgroup`, scheduler below): tests
that share an expensive fixture run in one worker — the areas whose session fixtures build a whole
world (dbt + faults share one, stream has its own) are one group each, every other file is its own
group (module fixtures stay single), and so is a file of those areas that loads its own data
(``OWN_GROUP_FILES``: the Spark slice, which would otherwise lengthen the world group). Groups are
ordered heaviest first so the two workers finish together; inside a group the collection order is
kept, except that tests marked `audit_last` (the secrets and audit scan over everything the session
left behind) run after the rest of their group.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.launcher import Fleet
from tests.pytest.support.fleets import clear_fleet_faults, new_fleet, running_fleet, test_scale
from tests.pytest.support.ports import free_port_base
from tests.pytest.support.sources import use_embedded_sources
from tests.pytest.support.world import Reference, build_reference, start_source_fleet

_SOURCES_DIRS: list[Path] = []


def pytest_configure(config: pytest.Config) -> None:
    """Every suite loads only the shop's embedded sources, whatever else ``sources/`` holds
    (tests/pytest/support/sources.py). Publishes build no HTML report unless a test asks for one: the
    shared clean run does (tests/pytest/support/world.py) and the consumers suite checks it; building it in
    every other flow of the session would cost ~1 s each for nothing those cases look at."""
    _SOURCES_DIRS.append(use_embedded_sources())
    os.environ.setdefault("SHOP_REPORT", "off")


def pytest_unconfigure(config: pytest.Config) -> None:
    for folder in _SOURCES_DIRS:
        shutil.rmtree(folder, ignore_errors=True)


# Areas whose session-scoped fixtures build a loaded world, and the xdist group each runs in: the dbt,
# fault, orchestration, consumers and spark suites share `reference` (tests/pytest/support/world.py),
# the stream suite has its own world.
SESSION_WORLD_AREAS = {
    "dbt": "world",
    "faults": "world",
    "orchestration": "world",
    "consumers": "world",
    "spark": "world",  # the slow Spark builds start from the reference's warehouse (tests/pytest/spark)
    "stream": "stream",
}
# Files of those areas that load their own data, each a group of its own: the world group is the longest
# group, and these would bring it closer to being the run's critical path.
OWN_GROUP_FILES = {"spark/test_spark_subset.py"}
TESTS_PREFIX = "tests/pytest/"  # where these suites sit in the repo (nodeids are relative to the root)
# Heaviest first (measured wall time of each group with --durations); unlisted groups keep their order.
HEAVY_FIRST = (
    "stream",
    "world",
    "elt/test_flow_e2e.py",
    "spark/test_spark_subset.py",
    "bench/test_bench_quick.py",
)


def xdist_group_of(path: str) -> str:
    """The scheduling group of a test file (a path relative to this folder, or a nodeid relative to the
    repo): its world for the world-sharing areas, else the file itself."""
    rel = path.split("::", 1)[0].removeprefix(TESTS_PREFIX)
    if rel in OWN_GROUP_FILES:
        return rel
    return SESSION_WORLD_AREAS.get(rel.split("/", 1)[0], rel)


def _rel(item: pytest.Item) -> str:
    return Path(str(item.path)).resolve().relative_to(Path(__file__).resolve().parent).as_posix()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Heaviest groups first, ``audit_last`` tests at the end of their group (a stable sort: otherwise
    the collection order stays)."""

    def rank(item: pytest.Item) -> tuple[int, bool]:
        group = xdist_group_of(_rel(item))
        heavy = HEAVY_FIRST.index(group) if group in HEAVY_FIRST else len(HEAVY_FIRST)
        return heavy, item.get_closest_marker("audit_last") is not None

    items.sort(key=rank)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """With ``--dist loadgroup``: schedule by ``xdist_group_of`` (whole groups to one worker, in
    collection order). Why not xdist's own loadgroup: it tags groups by rewriting ``item._nodeid``,
    which pytest 9 no longer reads (``nodeid`` comes from ``item._id``), so its groups are ignored."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class AreaScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid)

    return AreaScheduling(config, log)


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """The shared fleet (scale SHOP_TEST_SCALE, seed 42), started once per session, stopped at the end.

    Treat its data as read-only: suites that change data should start their own fleet (see
    `make_fleet`) on a copy, so other suites keep seeing the generated state.
    """
    root = tmp_path_factory.mktemp("fleet")
    with running_fleet(root / "run", root / "data", scale=test_scale(), seed=42) as fl:
        yield fl


@pytest.fixture(scope="session")
def fleet_env(fleet: Fleet) -> dict[str, str]:
    """The fleet's fleet.env as a dict (base URLs, credentials, admin token), ready for a loader's env."""
    return fleet.env()


@pytest.fixture(scope="session")
def source_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """The dbt and fault suites' fleet (scale 0.02, seed 42); its data is never changed by a test."""
    fl = start_source_fleet(tmp_path_factory.mktemp("faults-fleet"), free_port_base())
    try:
        yield fl
    finally:
        fl.stop()


@pytest.fixture(scope="session")
def reference(source_fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """A clean ``elt run`` on the source fleet's data: the state every recovered fault case must equal,
    and the build the dbt suite copies (tests/pytest/support/world.py)."""
    return build_reference(tmp_path_factory.mktemp("faults-reference"), source_fleet)


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
        fl = new_fleet(root / "run", data_dir or root / "data", **kwargs)
        started.append(fl)
        if start:
            fl.start()
        return fl

    yield factory
    for fl in started:
        fl.stop()
