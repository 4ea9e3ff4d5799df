"""Fixtures of the loader suite: a private warehouse and run folder per test, loader env from a fleet,
and ground truth read straight from the services' SQLite files.

Loads run in-process through ``extract.runner.run`` (fast: no interpreter and dlt start-up per run)
except where a real process is the point (kill -9, two concurrent runs, stderr of a failing run),
which use ``run_cli``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from services.launcher import Fleet
from tests.pytest.extract.helpers import (
    LoaderEnv,
    fleet_loader_env,
)


@pytest.fixture
def loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., LoaderEnv]:
    """Factory: point the loader (in this process) at ``fleet`` with a fresh warehouse and run folder."""

    def setup(fleet: Fleet, **extra: str) -> LoaderEnv:
        root = tmp_path / "loader"
        root.mkdir(exist_ok=True)
        wh = root / "wh" / "shop.duckdb"
        wh.parent.mkdir(exist_ok=True)
        run_dir = root / "run"
        run_dir.mkdir(exist_ok=True)
        for name in list(os.environ):
            if name.startswith("SOURCES__"):
                monkeypatch.delenv(name)
        env = {
            "SHOP_WAREHOUSE": str(wh),
            "SHOP_RUN_DIR": str(run_dir),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            **fleet_loader_env(fleet),
            **extra,
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        return LoaderEnv(root, wh, run_dir, env)

    return setup


@pytest.fixture
def own_fleet(fleet: Fleet, make_fleet: Callable[..., Fleet], tmp_path: Path) -> Iterator[Fleet]:
    """A private fleet on a copy of the shared fleet's data, for tests that change data or set faults."""
    data = tmp_path / "data"
    shutil.copytree(fleet.data_dir, data)
    yield make_fleet(data_dir=data)
