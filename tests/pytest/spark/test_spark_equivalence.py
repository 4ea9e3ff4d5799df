"""The same dbt project on Spark gives the same marts as on DuckDB (issue 16).

- ``test_spark_build_passes_every_test`` / ``test_every_mart_equals_duckdb`` (slow, `make test-spark`):
  the whole flow on Spark from the reference run's raw data - every seed, snapshot, model, data test
  and unit test built and passed on Spark - then every published mart equal to the DuckDB run's
  published one: row count, key set, every money column summed, every row.
- `make test`'s slice of the same comparison (``+dim_products``, its own raw data, its own scheduling
  group) is test_spark_subset.py.
"""

from __future__ import annotations

import json

import duckdb
import pytest

from tests.pytest.spark import equivalence
from tests.pytest.spark.conftest import SparkRun
from tests.pytest.support.world import Reference

pytestmark = pytest.mark.timeout(3600)


def _results(run: SparkRun) -> list[dict[str, object]]:
    return json.loads((run.spark_dir / "target" / "run_results.json").read_text())["results"]


@pytest.mark.slow
def test_spark_build_passes_every_test(spark_full: SparkRun, reference: Reference) -> None:
    """Every node DuckDB's build ran (seeds, snapshots, models, data and unit tests) passed on Spark."""
    spark = {r["unique_id"]: r["status"] for r in _results(spark_full)}
    duck_results = json.loads((reference.workspace.root / "target" / "run_results.json").read_text())[
        "results"
    ]
    duck = {r["unique_id"]: r["status"] for r in duck_results}
    assert spark, "the Spark build ran no node"
    missing = sorted(set(duck) - set(spark))
    assert not missing, f"nodes DuckDB ran that Spark did not: {missing[:10]}"
    failed = {uid: status for uid, status in spark.items() if status not in ("success", "pass")}
    assert not failed, f"nodes that did not pass on Spark: {failed}"
    kinds = {uid.split(".")[0] for uid in spark}
    assert {"model", "seed", "snapshot", "test", "unit_test"} <= kinds, kinds


@pytest.mark.slow
def test_every_mart_equals_duckdb(spark_full: SparkRun, reference: Reference) -> None:
    """Spark's published version equals DuckDB's, mart by mart (the same publish step and manifest)."""
    spark_version = (spark_full.exports / "current").resolve()
    duck_version = (reference.workspace.exports / "current").resolve()
    manifest = json.loads((spark_version / "manifest.json").read_text())
    assert manifest["dbt"]["target"] == "spark"
    duck_manifest = json.loads((duck_version / "manifest.json").read_text())
    assert sorted(manifest["marts"]) == sorted(duck_manifest["marts"])
    assert manifest["pii_key"]["fingerprint"] == duck_manifest["pii_key"]["fingerprint"]
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    duck_marts = equivalence.version_views(con, duck_version, "duck")
    spark_marts = equivalence.version_views(con, spark_version, "spark")
    assert duck_marts == spark_marts and len(duck_marts) == len(equivalence.KEYS)
    problems = []
    compared_money = 0
    for mart in duck_marts:
        problems += equivalence.differences(con, mart, f'duck."{mart}"', f'spark."{mart}"')
        compared_money += len(equivalence.money_columns(con, f'duck."{mart}"'))
        assert manifest["marts"][mart]["rows"] == duck_manifest["marts"][mart]["rows"], mart
    assert not problems, "Spark's marts differ from DuckDB's:\n" + "\n".join(problems)
    assert compared_money >= 20, f"only {compared_money} money columns compared"
    (orders,) = con.execute('select count(*) from spark."fct_orders"').fetchone()
    assert orders > 0, "the comparison ran on empty marts"
