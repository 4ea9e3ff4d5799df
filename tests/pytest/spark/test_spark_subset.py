"""`make test`'s Spark case (issue 16): a slice of the dbt project built on Spark equals the same slice
built on DuckDB, from the same raw data.

The slice is ``+dim_products``, the smallest one that still crosses every layer: the seed
``fx_rates_daily``, the source ``catalog.products`` read through its committed loads (``_dlt_loads``),
the staging view ``stg_catalog__products``, the intermediate table ``int_fx_rates`` and the mart
``dim_products`` with two money columns (``list_price``, ``list_price_usd``: a minor-unit amount and a
currency conversion), plus the data tests of those nodes (the row drop guard, accepted values, unique,
not null, non-negative money). On the way it runs the ``adapter.dispatch`` macros both engines spell
differently (``to_utc``, the load order, the raw-data check, the raw lake's registration). The whole
project on Spark, every mart, is `make test-spark` (test_spark_equivalence.py).

Why its own raw data and its own scheduling group, not the shared reference of the `world` group
(tests/pytest/conftest.py): the world group is by far the longest group of `make test` (three quarters
of its worker's time); the two workers finish together only because the other one takes the many small
files meanwhile, and a case added to the world group brings it closer to being the whole run's
critical path. Here the session fleet is loaded for one service, catalog (the only one the slice
reads), and the slice is built on DuckDB then on Spark; the raw lake then holds that service's tables
alone, so Spark registers three tables, not sixteen. The price of the independence is that load and
the DuckDB build of the slice. The case's cost is Spark's fixed costs (a JVM, dbt's parse, the
metastore, a seed written row by row), not the data. `make test` installs what it needs (Java, the
spark group).
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from tests.pytest.spark import equivalence
from tests.pytest.spark.conftest import run_spark_flow
from tests.pytest.support.workspace import Workspace, make_workspace, run

pytestmark = pytest.mark.timeout(1200)

SLICE = "+dim_products"
PII_KEY = "spark-subset-pii-key-3a7e51"


def test_spark_slice_equals_duckdb(fleet_env: dict[str, str], tmp_path: Path) -> None:
    """Seed, source, staging, intermediate and a mart with money, built and tested on Spark: the mart
    equals DuckDB's build of the same slice on the same raw data, row by row and to the cent."""
    pytest.importorskip("pyspark", reason="the spark group is not installed: make test installs it")
    ws: Workspace = make_workspace(tmp_path, fleet_env, PII_KEY)
    load = run(ws, ["-m", "extract", "catalog"])
    assert load.returncode == 0, load.describe()
    duck = run(ws, ["-m", "elt", "dbt", "build", "--select", SLICE, "--indirect-selection", "cautious"])
    assert duck.returncode == 0, duck.describe()

    env = {**ws.env, "SHOP_SPARK_DIR": str(tmp_path / "spark")}
    spark = run_spark_flow(tmp_path, env, "--select", SLICE, "--no-publish")
    assert spark.returncode == 0, f"the Spark flow exited {spark.returncode}:\n{spark.output[-6000:]}"

    spark_results = json.loads((spark.spark_dir / "target" / "run_results.json").read_text())["results"]
    duck_results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    on_spark = {r["unique_id"]: r["status"] for r in spark_results}
    on_duck = {r["unique_id"]: r["status"] for r in duck_results}
    assert set(on_spark) == set(on_duck), "the two builds ran different nodes"
    assert all(status in ("success", "pass") for status in on_spark.values()), on_spark
    kinds = {uid.split(".")[0] for uid in on_spark}
    assert {"seed", "model", "test"} <= kinds, kinds
    assert {"stg_catalog__products", "int_fx_rates", "dim_products"} <= {
        uid.split(".")[-1] for uid in on_spark
    }
    lake = {p.parent.name + "." + p.name for p in (spark.spark_dir / "lake").glob("*/raw_*/*")}
    assert lake == {"raw_catalog._dlt_loads", "raw_catalog.categories", "raw_catalog.products"}, lake

    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"attach '{ws.warehouse}' as duck (read_only)")
    con.execute(f"attach '{spark.spark_dir / 'spark_marts.duckdb'}' as spark (read_only)")
    problems = equivalence.differences(
        con, "dim_products", "duck.marts.dim_products", "spark.marts.dim_products"
    )
    assert not problems, "\n".join(problems)
    assert equivalence.money_columns(con, "spark.marts.dim_products") == ["list_price", "list_price_usd"]
    (rows, converted) = con.execute(
        "select count(*), count(list_price_usd) from spark.marts.dim_products"
    ).fetchone()
    assert rows > 0 and converted == rows, (rows, converted)
