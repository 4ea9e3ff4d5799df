"""One test per dlt private use or patch of extract/dltcompat.py: each fails when the dlt behaviour it
relies on changes (run against a real dlt pipeline into a DuckDB file in tmp_path; seconds)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import dlt
import pytest
from dlt.common.configuration.specs.base_configuration import SecretSentinel

from extract import dltcompat

ROWS = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[dlt.Pipeline]:
    yield dlt.pipeline(
        pipeline_name="compat",
        destination=dlt.destinations.duckdb(str(tmp_path / "wh.duckdb")),
        dataset_name="raw_compat",
        pipelines_dir=str(tmp_path / "dlt"),
    )


def _attach(tmp_path: Path) -> dlt.Pipeline:
    """A second pipeline object on the same working folder (as the next loader run makes)."""
    return dlt.pipeline(
        pipeline_name="compat",
        destination=dlt.destinations.duckdb(str(tmp_path / "wh.duckdb")),
        dataset_name="raw_compat",
        pipelines_dir=str(tmp_path / "dlt"),
    )


def test_the_version_check_names_the_module_and_both_versions() -> None:
    dltcompat.check_version(dltcompat.DLT_VERSION)  # the installed one passed at import
    with pytest.raises(
        dltcompat.DltVersionError, match=r"dlt 9\.9\.9 is installed .*dltcompat\.py .*1\.31\.0"
    ):
        dltcompat.check_version("9.9.9")


def test_run_syncs_once_and_skips_the_sync_when_marked(tmp_path: Path, pipeline: dlt.Pipeline) -> None:
    """``_state_restored``: False on a new pipeline object, True after ``run()``, and while True ``run()``
    does not sync with the destination (what extract/statesync.py's shortcut relies on)."""
    assert dltcompat.state_restored(pipeline) is False
    pipeline.run(ROWS, table_name="items")
    assert dltcompat.state_restored(pipeline) is True

    again = _attach(tmp_path)
    assert dltcompat.state_restored(again) is False

    def no_sync(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("run() synced although the pipeline was marked synced")

    again._sync_destination = no_sync  # type: ignore[method-assign]
    dltcompat.mark_state_restored(again)
    again.run(ROWS, table_name="items")  # would raise in no_sync if the mark were ignored

    unmarked = _attach(tmp_path)
    unmarked._sync_destination = no_sync  # type: ignore[method-assign]
    with pytest.raises(Exception, match="synced although"):
        unmarked.run(ROWS, table_name="items")


def test_local_schemas_are_seen(pipeline: dlt.Pipeline) -> None:
    pipeline.run(ROWS, table_name="items")
    names = pipeline.state.get("schema_names") or []
    assert names and all(dltcompat.has_local_schema(pipeline, n) for n in names)
    assert dltcompat.has_local_schema(pipeline, "no_such_schema") is False


def test_package_storages_hold_what_each_step_left(pipeline: dlt.Pipeline) -> None:
    """The storages extract/pending.py and extract/resume.py read and clean: an extracted package is in
    the normalize storage (and can be deleted there), a normalized one has new jobs and no abort flag
    in the load storage, a loaded one is listed as loaded."""
    pipeline.extract(ROWS, table_name="items")
    (extracted,) = pipeline.list_extracted_load_packages()
    normalize = dltcompat.normalize_storage(pipeline)
    normalize.extracted_packages.delete_package(extracted)
    assert pipeline.list_extracted_load_packages() == []

    pipeline.extract(ROWS, table_name="items")
    pipeline.normalize()
    (normalized,) = pipeline.list_normalized_load_packages()
    packages = dltcompat.load_storage(pipeline).normalized_packages
    assert packages.list_new_jobs(normalized) and not packages.has_abort_flag(normalized)

    pipeline.load()
    storage = dltcompat.load_storage(pipeline)
    assert storage.is_storage_ready() and normalized in storage.list_loaded_packages()


def test_the_stop_flag_is_the_one_dlt_loops_check() -> None:
    from dlt.common.runtime import signals as dlt_signals

    assert not dlt_signals.was_signal_received()
    try:
        dltcompat.stop_dlt_loops(signal.SIGTERM)
        assert dlt_signals.was_signal_received()
        assert dlt_signals.exit_event.is_set()  # sleeping dlt threads wake
        with pytest.raises(dlt_signals.SignalReceivedException):
            dlt_signals.raise_if_signalled()
    finally:
        dlt_signals.set_received_signal(0)
        dlt_signals.exit_event.clear()


@pytest.mark.parametrize(
    "hint",
    [int, str, str | None, Annotated[str | None, SecretSentinel], list[str] | None, dict[str, Any]],
)
def test_cached_hint_functions_answer_as_dlt_does(hint: Any) -> None:
    import dlt.common.configuration.resolve as resolve
    import dlt.common.configuration.specs.base_configuration as base

    dltcompat.install_hint_cache()
    assert resolve.is_secret_hint is base.is_secret_hint  # the modules that resolve use the cached one
    assert hasattr(base.is_secret_hint, "__wrapped__") and hasattr(base.extract_inner_hint, "__wrapped__")
    original_secret = base.is_secret_hint.__wrapped__
    original_inner = base.extract_inner_hint.__wrapped__
    for _ in range(2):  # the second call is served from the cache
        assert base.is_secret_hint(hint) == original_secret(hint)
        assert resolve.extract_inner_hint(hint, preserve_literal=True) == original_inner(
            hint, preserve_literal=True
        )
    assert base.is_secret_hint(Annotated[str | None, SecretSentinel]) is True
    assert base.is_secret_hint(int) is False


def test_capabilities_resolve_the_partial_configuration_once(tmp_path: Path) -> None:
    """dlt's ``capabilities()`` asks ``configuration(..., accept_partial=True)``: patched, the first answer
    is kept; a client's full configuration is still resolved on every call."""
    dest = dlt.destinations.duckdb(str(tmp_path / "wh.duckdb"))
    calls: list[bool] = []
    resolve = dest.configuration

    def counting(initial_config: Any, accept_partial: bool = False) -> Any:
        calls.append(accept_partial)
        return resolve(initial_config, accept_partial)

    dest.configuration = counting  # type: ignore[method-assign]
    dltcompat.cache_partial_configuration(dest)
    first = dest.capabilities()
    second = dest.capabilities()
    assert calls == [True], (
        "capabilities() no longer resolves a partial configuration through configuration()"
    )
    assert first.preferred_loader_file_format == second.preferred_loader_file_format
    spec = dest.spec()
    assert dest.configuration(spec, accept_partial=True) is dest.configuration(spec, accept_partial=True)
    assert calls == [True]
