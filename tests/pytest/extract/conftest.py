"""Fixtures of the loader suite: a private warehouse and run folder per test, loader env from a fleet,
and ground truth read straight from the services' SQLite files.

Loads run in-process through ``extract.runner.run`` (fast: no interpreter and dlt start-up per run)
except where a real process is the point (kill -9, two concurrent runs, stderr of a failing run),
which use ``run_cli``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.launcher import Fleet
from tests.pytest.extract.helpers import (
    LoaderEnv,
    fleet_loader_env,
)
from tests.pytest.support.envs import use_loader_project


@pytest.fixture
def loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., LoaderEnv]:
    """Factory: point the loader (in this process) at ``fleet`` with a fresh warehouse and run folder."""

    def setup(fleet: Fleet, **extra: str) -> LoaderEnv:
        root = tmp_path / "loader"
        settings = {**fleet_loader_env(fleet), **extra}  # ``extra`` may override the fleet's own
        wh = use_loader_project(root, monkeypatch, **settings)
        env = {"SHOP_WAREHOUSE": str(wh), "SHOP_RUN_DIR": str(root / "run"), **settings}
        return LoaderEnv(root, wh, root / "run", env)

    return setup


@pytest.fixture
def own_fleet(fleet: Fleet, make_fleet: Callable[..., Fleet], tmp_path: Path) -> Iterator[Fleet]:
    """A private fleet on a copy of the shared fleet's data, for tests that change data or set faults."""
    data = tmp_path / "data"
    shutil.copytree(fleet.data_dir, data)
    yield make_fleet(data_dir=data)
