"""The loader's speed-ups keep its behaviour: the state-sync shortcut, page batching and
DuckDB's memory cap (extract/README.md, "Speed"); the cached dlt hints: test_dltcompat.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from core.settings import warehouse_path
from extract.pipelines import connect_warehouse, make_pipeline
from extract.resources import Batches
from extract.runner import run
from extract.statesync import local_state_is_current
from services.launcher import Fleet
from tests.pytest.extract.helpers import LoaderEnv, assert_matches_source

ALL = ("customers", "catalog", "orders", "payments", "events")


def _current(services: tuple[str, ...]) -> dict[str, bool]:
    """Whether the shortcut applies to each service's pipeline against the configured warehouse."""
    con = duckdb.connect(str(warehouse_path()))
    try:
        return {s: local_state_is_current(make_pipeline(s, con), con.cursor()) for s in services}
    finally:
        con.close()


def test_sync_shortcut_only_when_the_warehouse_holds_the_local_state(
    fleet: Fleet, loader: Callable[..., LoaderEnv], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = loader(fleet)
    assert run([]).failures == {}
    assert _current(ALL) == dict.fromkeys(ALL, True)

    # the warehouse is replaced by an empty one while the run folder (local dlt state) stays: the shortcut
    # must not apply, and dlt's own sync must wipe the stale state so that everything is reloaded
    other = dataclasses.replace(env, warehouse=env.root / "wh2" / "shop.duckdb")
    other.warehouse.parent.mkdir()
    monkeypatch.setenv("SHOP_WAREHOUSE", str(other.warehouse))
    assert _current(ALL) == dict.fromkeys(ALL, False)
    result = run([])
    assert result.failures == {}
    assert_matches_source(other, fleet.data_dir, ALL)
    assert _current(ALL) == dict.fromkeys(ALL, True)


def test_sync_shortcut_refuses_a_different_warehouse_state(
    fleet: Fleet, loader: Callable[..., LoaderEnv]
) -> None:
    """A warehouse state that differs from the local one (another run, a restore) is not 'current'."""
    loader(fleet)
    assert run(["catalog"]).failures == {}
    con = duckdb.connect(str(warehouse_path()))
    try:
        pipeline = make_pipeline("catalog", con)
        state = pipeline.state
        con.execute(
            "update raw_catalog._dlt_pipeline_state set version_hash = 'not-the-local-one' "
            "where pipeline_name = 'extract_catalog'"
        )
        assert state["_version_hash"] != "not-the-local-one"
        assert not local_state_is_current(pipeline, con.cursor())
    finally:
        con.close()


def _page(ids: list[int], extra: bool = False) -> tuple[pa.Table, dict[str, pa.Table]]:
    parent = {"id": pa.array(ids, pa.int64())}
    if extra:
        parent["new_col"] = pa.array([f"x{i}" for i in ids])
    child = pa.table({"id": pa.array(ids + ids, pa.int64()), "line": pa.array(list(range(2 * len(ids))))})
    return pa.table(parent), {"lines": child}


def test_batches_hold_about_n_parent_rows_with_their_children() -> None:
    batches = Batches(rows=5)
    parent, children = _page([1, 2, 3])
    assert batches.add("orders", parent, children) == []
    parent, children = _page([4, 5, 6], extra=True)  # a new column appears on the second page
    due = batches.add("orders", parent, children)
    assert [name for name, _ in due] == ["orders", "lines"]  # parent first, then its children
    orders, lines = due[0][1], due[1][1]
    assert orders.column("id").to_pylist() == [1, 2, 3, 4, 5, 6]
    assert orders.column("new_col").to_pylist() == [None, None, None, "x4", "x5", "x6"]
    assert lines.num_rows == 12
    assert batches.flush() == []
    parent, children = _page([7])
    assert batches.add("orders", parent, children) == []
    empty = pa.table({"id": pa.array([], pa.int64())})
    assert batches.add("orders", empty, {"lines": empty}) == []
    rest = batches.flush()
    assert [(name, t.num_rows) for name, t in rest] == [("orders", 1), ("lines", 2)]


def test_duckdb_memory_is_capped_by_default_and_configurable(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_WAREHOUSE", str(tmp_path / "shop.duckdb"))
    monkeypatch.delenv("SOURCES__EXTRACT__DUCKDB_MEMORY_LIMIT", raising=False)

    def limit() -> str:
        con = connect_warehouse()
        try:
            return con.execute("select current_setting('memory_limit')").fetchone()[0]
        finally:
            con.close()

    assert limit() == "366.2 MiB"  # 384 MB
    monkeypatch.setenv("SOURCES__EXTRACT__DUCKDB_MEMORY_LIMIT", "1GB")
    assert limit() == "953.6 MiB"
    monkeypatch.setenv("SOURCES__EXTRACT__DUCKDB_MEMORY_LIMIT", "none")
    assert limit() not in ("366.2 MiB", "953.6 MiB")
