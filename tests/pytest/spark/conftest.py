"""The spark suite's world: a copy of the shared clean run's warehouse (tests/pytest/support/world.py:
scale 0.02, loaded and built on DuckDB once per session, published), from which the Spark flow builds
the same marts (``python -m elt.spark_flow --reuse-raw``: raw lake, ``dbt build --target spark``,
publish) in a workspace of its own. The suite runs in the `world` xdist group
(tests/pytest/conftest.py), so the reference is built once. Real Spark (pyspark, local[2])
throughout: `make test-spark` installs it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.pytest.support.world import Reference

REPO = Path(__file__).resolve().parents[3]
SPARK_TIMEOUT = 3600.0  # a full Spark build at scale 0.02 on a busy 2-core machine


@dataclass
class SparkRun:
    root: Path
    env: dict[str, str]
    returncode: int
    output: str
    seconds: float

    @property
    def spark_dir(self) -> Path:
        return Path(self.env["SHOP_SPARK_DIR"])

    @property
    def exports(self) -> Path:
        return Path(self.env["SHOP_EXPORTS_DIR"])


def spark_workspace(reference: Reference, root: Path) -> dict[str, str]:
    """An environment whose warehouse is a copy of the reference's (raw and DuckDB marts), with its own
    exports, run folder and Spark folder."""
    pytest.importorskip("pyspark", reason="the spark group is not installed: run make test-spark")
    (root / "warehouse").mkdir(parents=True)
    warehouse = root / "warehouse" / "shop.duckdb"
    shutil.copy2(reference.workspace.warehouse, warehouse)
    env = dict(reference.workspace.env)
    env.update(
        SHOP_WAREHOUSE=str(warehouse),
        SHOP_EXPORTS_DIR=str(root / "exports"),
        SHOP_RUN_DIR=str(root / "run"),
        SHOP_SPARK_DIR=str(root / "spark"),
        DBT_TARGET_PATH=str(root / "target"),
        DBT_LOG_PATH=str(root / "logs"),
        SHOP_REPORT="off",
    )
    return env


def run_spark_flow(root: Path, env: dict[str, str], *args: str) -> SparkRun:
    """``python -m elt.spark_flow --reuse-raw <args>`` in ``env``; its output kept in ``root``."""
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "elt.spark_flow", "--reuse-raw", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=SPARK_TIMEOUT,
    )
    (root / "spark-flow.log").write_text(proc.stdout)
    return SparkRun(root, env, proc.returncode, proc.stdout, time.monotonic() - t0)


@pytest.fixture(scope="session")
def spark_full(reference: Reference, tmp_path_factory: pytest.TempPathFactory) -> SparkRun:
    """The whole Spark flow on the reference's raw data, published to its own exports folder."""
    root = tmp_path_factory.mktemp("spark-full")
    run = run_spark_flow(root, spark_workspace(reference, root))
    assert run.returncode == 0, f"the Spark flow exited {run.returncode}:\n{run.output[-6000:]}"
    return run
