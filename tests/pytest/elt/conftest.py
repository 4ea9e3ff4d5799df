"""Fixtures for the elt suite: every elt path (warehouse, exports, run, dbt target) isolated in the
test's tmp dir, and a fake dbt project output to publish from (see helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core import lock
from tests.pytest.elt.helpers import EltPaths, fill_marts, write_dbt_artifacts


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
    monkeypatch.setenv("SHOP_WAREHOUSE", str(paths.warehouse))
    monkeypatch.setenv("SHOP_EXPORTS_DIR", str(paths.exports))
    monkeypatch.setenv("SHOP_RUN_DIR", str(paths.run))
    monkeypatch.setenv("DBT_TARGET_PATH", str(paths.target))
    monkeypatch.setenv("SHOP_PII_KEY", "test-pii-key-0123456789")
    monkeypatch.delenv(lock.INHERITED_FD_ENV, raising=False)
    paths.warehouse.parent.mkdir(parents=True)
    paths.target.mkdir()
    return paths


@pytest.fixture()
def fake_project(elt_env: EltPaths) -> EltPaths:
    fill_marts(elt_env.warehouse)
    write_dbt_artifacts(elt_env.target)
    return elt_env
