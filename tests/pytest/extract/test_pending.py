"""A kill inside dlt's normalize commit (package renamed to normalized, extracted copy not yet deleted)
converges on the next run instead of failing every run after (extract/pending.py)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from extract.config import service_config
from extract.pipelines import make_pipeline
from extract.progress import RunProgress
from extract.resources import build_source
from extract.runner import run
from extract.shape import DriftTracker
from extract.sources import SERVICES
from services.launcher import Fleet
from services.simulator.simulator import Simulator
from tests.pytest.extract.helpers import LoaderEnv, assert_matches_source


def _killed_inside_normalize_commit(name: str, aside: Path) -> str:
    """Extract and normalize ``name`` as the loader does, then put the extracted copy back: the state a
    kill -9 between dlt's rename to ``load/normalized`` and its delete of the extracted package leaves."""
    service = SERVICES[name]
    pipeline = make_pipeline(name)
    source, _ = build_source(
        service, service_config(name, service.auth), datetime.now(UTC), RunProgress(), DriftTracker()
    )
    pipeline.extract(source, loader_file_format="parquet")
    (load_id,) = pipeline.list_extracted_load_packages()
    extracted = Path(pipeline.working_dir) / "normalize" / "extracted" / load_id
    shutil.copytree(extracted, aside / load_id)
    pipeline.normalize()
    assert not extracted.exists()
    shutil.copytree(aside / load_id, extracted)
    again = make_pipeline(name)
    assert load_id in again.list_extracted_load_packages()
    assert load_id in again.list_normalized_load_packages()
    return load_id


def test_a_package_both_normalized_and_extracted_loads_once(
    own_fleet: Fleet, loader: Callable[..., LoaderEnv], tmp_path: Path
) -> None:
    env = loader(own_fleet)
    assert run(["catalog"]).failures == {}  # loaded once: the dataset exists, so dlt keeps pending work
    with Simulator(own_fleet.data_dir, seed=5) as sim:
        sim.step(200)  # price changes: new product versions for the interrupted run to carry
    load_id = _killed_inside_normalize_commit("catalog", tmp_path)
    first = run(["catalog"])
    assert first.failures == {}, first.failures
    assert_matches_source(env, own_fleet.data_dir, ("catalog",))
    con = env.con()
    try:
        loads = [r[0] for r in con.execute("select load_id from raw_catalog._dlt_loads").fetchall()]
    finally:
        con.close()
    assert load_id in loads  # the normalized package itself was loaded, once
    assert make_pipeline("catalog").list_extracted_load_packages() == []
    assert run(["catalog"]).failures == {}  # and nothing is left to trip the next run
    assert_matches_source(env, own_fleet.data_dir, ("catalog",))
