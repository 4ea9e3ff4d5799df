"""A young source has no erasures or refunds yet, so dlt has not created those raw tables: staging must
still build (an empty relation stands in) instead of failing the whole `dbt build`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import duckdb

from tests.pytest.support.dbt_world import DbtWorld, failures

MISSING = ("raw_customers.deletions", "raw_payments.refunds")
MODELS = (
    "base_customers__deletions",
    "stg_customers__deletions",
    "stg_payments__refunds",
    "int_refunds_converted",
    "int_order_payments_netted",
)


def test_staging_builds_before_deletions_and_refunds_exist(
    dbt_world: DbtWorld, first_build: dict[str, Any], tmp_path: Path
) -> None:
    assert first_build["_exit_code"] == 0, "first build failed; see test_dbt_build"
    young = DbtWorld(root=tmp_path, fleet=dbt_world.fleet)
    shutil.copy(dbt_world.warehouse, young.warehouse)
    with duckdb.connect(str(young.warehouse)) as con:
        for table in MISSING:
            con.execute(f"drop table {table}")

    results = young.dbt("run", "--select", *MODELS)

    assert results["_exit_code"] == 0, failures(results) or results["_stdout"][-3000:]
    built = {r["unique_id"].split(".")[-1] for r in results["results"] if r["unique_id"].startswith("model.")}
    assert built == set(MODELS)  # (the row drop guard's on-run-end hook is a result too: not a model)
    with duckdb.connect(str(young.warehouse), read_only=True) as con:
        assert con.execute("select count(*) from staging.stg_customers__deletions").fetchone()[0] == 0
        assert con.execute("select count(*) from staging.stg_payments__refunds").fetchone()[0] == 0
        netted = con.execute(
            "select count(*), sum(refunded_amount_usd) from intermediate.int_order_payments_netted"
        )
        orders, refunded = netted.fetchone()
    assert orders > 0, "orders still netted without any refunds table"
    assert not refunded, "no refunds table means nothing refunded"
