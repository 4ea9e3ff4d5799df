"""Incremental builds are exact: after the simulator changes the services and the loaders pick the
changes up, an incremental `dbt build` leaves every incremental model (the facts, the real-time marts
and int_sessions) equal (EXCEPT ALL both ways) to a `dbt run --full-refresh` of the same models on the
same data.
The snapshots record the changes as new versions.

Late commits: a first round of changes is loaded and merged by the stream's `dbt run -s tag:realtime`;
the second round commits a share of its changes late, stamped a few seconds behind changes the
real-time marts already merged (inside the loaders' lag window, so raw does get them), and is merged
by the `dbt build`. A model that re-reads only from its high-water mark never merges those; the
comparison with the full refresh catches it. The simulator's clock is frozen at the test's start so
"behind the mark" does not depend on how long the extract and the first run take.

The same property holds for ``elt run``'s changed-only builds and what they publish (slow:
``test_changed_only_builds_equal_a_full_refresh``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core import checksums
from publish import versions
from publish.verify import verify_version
from services.launcher import Fleet
from services.simulator import Simulator
from services.store.timefmt import now_us
from tests.pytest.support.dbt_world import DbtWorld, FlowWorld, failures, flow_world_from_reference
from tests.pytest.support.workspace import run
from tests.pytest.support.world import Reference

SIMULATOR_STEPS = 250
LATE_STEPS = 250
LATE_COMMIT_SHARE = 0.3
# behind the newest change already merged, and well inside the loaders' lag window (lag_seconds)
LATE_SECONDS = 10.0
REALTIME_INCREMENTAL = {"rt_events_per_minute", "rt_orders_today"}


def incremental_models(dbt_world: DbtWorld) -> dict[str, str]:
    """Every incremental model of the project and its relation (``schema.name``), from the manifest, so
    a new one joins the check."""
    nodes = dbt_world.manifest()["nodes"].values()
    return {
        n["name"]: f"{n['schema']}.{n['name']}"
        for n in sorted(nodes, key=lambda n: n["name"])
        if n["resource_type"] == "model" and n["config"]["materialized"] == "incremental"
    }


def build_incremental(dbt_world: DbtWorld, models: list[str], *args: str) -> None:
    """`dbt build` (or ``args``); every one of ``models`` must have run (not been skipped)."""
    incremental = dbt_world.dbt(*(args or ("build",)))
    assert incremental["_exit_code"] == 0, "\n".join(failures(incremental)) or incremental["_stdout"][-3000:]
    ran = {r["unique_id"].split(".")[-1] for r in incremental["results"]} & set(models)
    assert ran == set(models), ran


def late_orders_behind_the_mark(dbt_world: DbtWorld, late: list[dict[str, Any]], mark: object) -> int:
    """Orders placed today whose newest version in raw is a late commit stamped before ``mark``: the
    rows a model without a look-back misses."""
    ids = sorted({key for commit in late for table, key in commit["records"] if table == "orders"})
    if not ids:
        return 0
    con = dbt_world.con()
    try:
        (count,) = con.execute(
            "select count(*) from staging.stg_orders__orders where order_id in (select unnest(?)) "
            "and cast(placed_at as date) = cast(timezone('UTC', current_timestamp) as date) "
            "and updated_at < ?",
            [ids, mark],
        ).fetchone()
    finally:
        con.close()
    return int(count)


def test_incremental_equals_full_refresh(dbt_world: DbtWorld, first_build: dict[str, Any]) -> None:
    assert first_build["_exit_code"] == 0, "first build failed; see test_dbt_build"
    relations = incremental_models(dbt_world)
    models = sorted(relations)
    assert set(models) >= REALTIME_INCREMENTAL | {"int_sessions"}, models
    con = dbt_world.con()
    try:
        before = {m: con.execute(f"select count(*) from {relations[m]}").fetchone()[0] for m in models}
    finally:
        con.close()

    frozen = now_us()
    with Simulator(dbt_world.data_dir, 7, clock=lambda: frozen, late_seconds=LATE_SECONDS) as sim:
        summary = sim.step(SIMULATOR_STEPS)
        for kind in ("new_order", "pay", "ship", "new_customer"):
            assert summary["kinds"].get(kind, 0) > 0, summary["kinds"]
        dbt_world.extract()
        # the stream's own command: the real-time marts take their high-water mark from these changes
        build_incremental(dbt_world, sorted(REALTIME_INCREMENTAL), "run", "--select", "tag:realtime")
        con = dbt_world.con()
        try:
            (mark,) = con.execute("select max(updated_at) from marts.rt_orders_today").fetchone()
        finally:
            con.close()
        assert mark is not None, "simulated orders are stamped today; rt_orders_today is empty"

        late_round = sim.step(LATE_STEPS, LATE_COMMIT_SHARE)
    assert late_round["late"], "no late commit was simulated"
    dbt_world.extract()
    behind = late_orders_behind_the_mark(dbt_world, late_round["late"], mark)
    assert behind > 0, "no late-committed order of today landed behind rt_orders_today's high-water mark"
    build_incremental(dbt_world, models)

    con = dbt_world.con()
    try:
        after = {m: con.execute(f"select count(*) from {relations[m]}").fetchone()[0] for m in models}
        # the simulator added orders, lines, payments and events: the increments must have landed
        grown = ("fct_orders", "fct_order_items", "fct_payments", "rt_events_per_minute", "int_sessions")
        for model in grown:
            assert after[model] > before[model], (model, before[model], after[model])
        con.execute("create schema if not exists compare_incremental")
        for model in models:
            copy = f"create or replace table compare_incremental.{model} as select * from {relations[model]}"
            con.execute(copy)
        snap_prices = con.execute(
            "select count(*) from snapshots.snap_product_prices where dbt_valid_to is not null"
        )
        closed_price_versions = snap_prices.fetchone()[0]
        snap_customers = con.execute(
            "select count(*) from snapshots.snap_customers where dbt_valid_to is not null"
        )
        closed_customer_versions = snap_customers.fetchone()[0]
    finally:
        con.close()
    kinds = Counter(summary["kinds"]) + Counter(late_round["kinds"])
    if kinds["price_change"]:
        assert closed_price_versions > 0, "price changes were simulated but no price version was closed"
    if kinds["profile_edit"] or kinds["erase"]:
        assert closed_customer_versions > 0, "customer changes were simulated but no version was closed"

    full = dbt_world.dbt("run", "--full-refresh", "--select", " ".join(models))
    assert full["_exit_code"] == 0, "\n".join(failures(full))

    con = dbt_world.con()
    try:
        differences = {}
        for model in models:
            only_incremental = con.execute(
                f"select count(*) from (select * from compare_incremental.{model} "
                f"except all select * from {relations[model]})"
            ).fetchone()[0]
            only_full = con.execute(
                f"select count(*) from (select * from {relations[model]} "
                f"except all select * from compare_incremental.{model})"
            ).fetchone()[0]
            if (only_incremental, only_full) != (0, 0):
                differences[model] = {"only_incremental": only_incremental, "only_full_refresh": only_full}
        late = f"{behind} late orders behind the mark"
        assert not differences, f"incremental != full refresh ({late}): {differences}"
        con.execute("drop schema compare_incremental cascade")
    finally:
        con.close()


@pytest.mark.slow
@pytest.mark.timeout(3600)  # five flow runs and a full refresh, each minutes on a loaded 2-core machine
def test_changed_only_builds_equal_a_full_refresh(
    reference: Reference, source_fleet: Fleet, tmp_path: Path
) -> None:
    """The same property through ``elt run``'s changed-only builds (elt/build_plan.py) and its publish,
    which carries unchanged marts and partitions (publish/carry.py): after rounds that change one service,
    then another, then every service, each mart in the warehouse equals a ``dbt build --full-refresh`` of
    the same data, and the published version (with its carried marts and linked partitions) verifies and
    holds exactly the full refresh's content.

    The world is the clean run's workspace with the cut's margins at 0 (as in ``DbtWorld``), so its first
    run is itself a changed-only build: two vars changed, the cut's models and their descendants rebuild."""
    world = flow_world_from_reference(
        tmp_path / "world",
        reference,
        source_fleet.data_dir,
        SHOP_MAX_COMMIT_DELAY_SECONDS="0",
        SHOP_SETTLE_SECONDS="0",
    )
    try:
        _changed_only_rounds(world)
    finally:
        world.fleet.stop()


def _changed_only_rounds(world: FlowWorld) -> None:
    def closed_prices() -> int:
        with world.con() as con:
            query = "select count(*) from snapshots.snap_product_prices where dbt_valid_to is not null"
            return con.execute(query).fetchone()[0]

    rounds: list[tuple[str, Callable[[], object]]] = [
        ("the cut's vars", lambda: None),
        ("every service", lambda: Simulator(world.fleet.data_dir, 5).step(SIMULATOR_STEPS)),
        ("catalog", lambda: world.change("price_change", 5)),
        ("events", lambda: world.change("browse_session", 20)),
    ]
    carried_seen = linked_seen = False
    for name, change in rounds:
        prices_before = closed_prices()
        change()
        out = world.run()
        assert out.returncode == 0, f"{name}: {out.describe()}"
        dbt_line = next(line for line in out.output.splitlines() if line.strip().startswith("dbt build"))
        assert "full build" not in dbt_line and " of " in dbt_line, f"{name}: {dbt_line}"
        built = {r["unique_id"].split(".")[-1] for r in world.run_results()["results"]}
        if name == "the cut's vars":
            assert "settle_seconds" in dbt_line and "fct_orders" in built and "fct_funnel_daily" not in built
        if name == "catalog":  # the snapshot of a changed source ran and recorded the new prices
            assert "snap_product_prices" in built and closed_prices() > prices_before
        if name == "events":
            assert "snap_product_prices" not in built and "fct_orders" not in built
        entries = versions.read_manifest(world.ws.exports / world.ws.current_version())["marts"].values()
        carried_seen |= any(m.get("carried_over") for m in entries)
        linked_seen |= any("written_in_version" in f for m in entries for f in m["files"])
    assert carried_seen, "no mart was carried: the comparison below would not cover carried files"
    assert linked_seen, "no partition was linked: the comparison below would not cover linked partitions"

    version = world.ws.exports / world.ws.current_version()
    published = versions.read_manifest(version)["marts"]
    marts = sorted(published)
    with world.con(read_only=False) as con:
        con.execute("create schema if not exists compare_changed_only")
        for mart in marts:
            relation = published[mart]["relation"]
            con.execute(f"create or replace table compare_changed_only.{mart} as select * from {relation}")
    full = run(world.ws, ["-m", "elt", "dbt", "build", "--full-refresh"], timeout=900)
    assert full.returncode == 0, full.describe()

    differences, content = {}, {}
    with world.con(read_only=False) as con:
        for mart in marts:
            relation = published[mart]["relation"]
            a = f"select * from compare_changed_only.{mart}"
            counts = (
                con.execute(f"select count(*) from ({a} except all select * from {relation})").fetchone()[0],
                con.execute(f"select count(*) from (select * from {relation} except all {a})").fetchone()[0],
            )
            if counts != (0, 0):
                differences[mart] = counts
            columns = [(c["name"], c["type"]) for c in published[mart]["schema"]]
            rows, total = con.execute(checksums.content_query(relation, columns)).fetchone()
            entry = published[mart]
            if (rows, total) != (entry["rows"], entry["content_checksum"]["value"]):
                content[mart] = {"full_refresh": (rows, total), "published": entry["rows"]}
        con.execute("drop schema compare_changed_only cascade")
    assert not differences, f"changed-only != full refresh (rows only in each): {differences}"
    assert not content, f"the published version != the full refresh's content: {content}"
    assert verify_version(version) == []
