"""``ops.dbt_results``: dbt's run_results.json copied per node under the dbt step's run id, with the kind
of each test taken from dbt's manifest; written once per run id, and never failing the step."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from tests.pytest.elt.helpers import EltPaths
from transform import dbt_results


def _artifacts(target: Path) -> None:
    (target / "manifest.json").write_text(
        json.dumps(
            {
                "nodes": {
                    "test.shop.not_null_fct_orders_order_id.1": {
                        "resource_type": "test",
                        "test_metadata": {"name": "not_null"},
                    },
                    "test.shop.assert_money_conserved": {"resource_type": "test"},
                }
            }
        )
    )
    results = [
        {"unique_id": "model.shop.fct_orders", "status": "success", "execution_time": 1.5, "failures": None},
        {
            "unique_id": "test.shop.not_null_fct_orders_order_id.1",
            "status": "pass",
            "execution_time": 0.1,
            "failures": 0,
        },
        {
            "unique_id": "test.shop.assert_money_conserved",
            "status": "fail",
            "execution_time": 0.2,
            "failures": 3,
        },
        {"unique_id": "unit_test.shop.fct_orders.t1", "status": "pass", "execution_time": 0.3, "failures": 0},
    ]
    (target / "run_results.json").write_text(
        json.dumps(
            {
                "metadata": {"invocation_id": "inv-9", "generated_at": "2026-12-01T10:00:00Z"},
                "args": {"which": "build"},
                "results": results,
            }
        )
    )


def test_results_are_kept_per_node_with_the_test_kind(elt_env: EltPaths) -> None:
    _artifacts(elt_env.target)
    assert dbt_results.record("run-1") == 4
    assert dbt_results.record("run-1") == 4  # written again (a retried step): still one set
    with duckdb.connect(str(elt_env.warehouse), read_only=True) as con:
        rows = con.execute(
            "select unique_id, resource_type, test_kind, status, failures, command, invocation_id "
            "from ops.dbt_results where run_id = 'run-1' order by unique_id"
        ).fetchall()
    assert rows == [
        ("model.shop.fct_orders", "model", None, "success", None, "build", "inv-9"),
        ("test.shop.assert_money_conserved", "test", "singular", "fail", 3, "build", "inv-9"),
        ("test.shop.not_null_fct_orders_order_id.1", "test", "not_null", "pass", 0, "build", "inv-9"),
        ("unit_test.shop.fct_orders.t1", "unit_test", "unit", "pass", 0, "build", "inv-9"),
    ]


def test_a_warehouse_that_cannot_take_them_is_a_warning_not_a_failure(elt_env: EltPaths, caplog) -> None:
    _artifacts(elt_env.target)
    elt_env.warehouse.mkdir()  # a folder where the file should be: DuckDB cannot open it
    assert dbt_results.record("run-2") == 0
    assert "dbt results not kept in ops.dbt_results" in caplog.text
    (elt_env.target / "run_results.json").unlink()
    assert dbt_results.record("run-3") == 0
    assert "cannot read" in caplog.text
