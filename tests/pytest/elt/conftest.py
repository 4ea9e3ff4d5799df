"""Fixtures for the elt suite: every elt path (warehouse, exports, run, dbt target) isolated in the
test's tmp dir, and a fake dbt project output to publish from (see helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pytest.elt.helpers import EltPaths, fill_marts, write_dbt_artifacts
from tests.pytest.support.envs import use_project_paths


@pytest.fixture()
def elt_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EltPaths:
    """Point every elt path at the test's tmp dir (children inherit it through the environment)."""
    paths = EltPaths(
        root=tmp_path,
        warehouse=tmp_path / "warehouse" / "shop.duckdb",
        exports=tmp_path / "exports",
        run=tmp_path / "run",
        target=tmp_path / "target",
    )
    use_project_paths(tmp_path, monkeypatch, SHOP_PII_KEY="test-pii-key-0123456789")
    return paths


@pytest.fixture()
def fake_project(elt_env: EltPaths) -> EltPaths:
    fill_marts(elt_env.warehouse)
    write_dbt_artifacts(elt_env.target)
    return elt_env
