"""Building a service's dlt pipeline: its working folder, its warehouse connection, and the state it
starts from (in step with the warehouse, no pending package left, no unfinished full refresh).

One dlt pipeline per service (``extract_<service>``, dataset ``raw_<service>``), its working folder
under the run folder's ``dlt/`` so the warehouse lock covers it.
"""

from __future__ import annotations

import logging
import sys

import dlt
import duckdb
from dlt.common.destination import Destination

from core import settings
from extract import dltcompat, docdrift, resume
from extract.config import ServiceConfig, service_config
from extract.refresh import Refresh
from extract.result import RunResult
from extract.spec import Service
from extract.statesync import align_with_warehouse

log = logging.getLogger("extract")
DUCKDB_MEMORY_LIMIT = "384MB"  # default of [sources.extract] duckdb_memory_limit ("none": DuckDB's own)


def pipelines_dir() -> str:
    """dlt's working folder: under the run folder, next to the fleet and the lock's other users."""
    return str(settings.dlt_dir())


def make_pipeline(
    name: str, connection: duckdb.DuckDBPyConnection | None = None, root: str | None = None
) -> dlt.Pipeline:
    """The pipeline of one service, writing dataset ``raw_<name>`` of the warehouse.

    ``root`` (dlt's ``pipelines_dir``; default: the loaders' dlt folder) only differs for a full refresh,
    whose pipeline has the same name and dataset but a working folder and database of its own
    (extract/refresh.py).

    With ``connection`` (an open connection to the warehouse) dlt borrows cursors from it instead of
    opening the file itself. Why: dlt's pool closes the database whenever its last borrowed cursor
    returns, i.e. several times per load step (schema update, each copy job, merge, completion); every
    close checkpoints the WAL into the file and every re-open reads the catalog again. Holding one
    connection for the whole run made that a single checkpoint (py-spy; bench/tuning-history.md).
    """
    dltcompat.install_hint_cache()  # cheaper config resolution for every dlt step (extract/dltcompat.py)
    target = connection if connection is not None else str(settings.warehouse_path())
    return dlt.pipeline(
        pipeline_name=f"extract_{name}",
        destination=warehouse_destination(target),
        dataset_name=f"raw_{name}",
        pipelines_dir=root or pipelines_dir(),
    )


def warehouse_destination(target: str | duckdb.DuckDBPyConnection) -> Destination:
    """``dlt.destinations.duckdb(target)`` whose capabilities configuration is resolved once per
    pipeline (extract/dltcompat.py says why)."""
    return dltcompat.cache_partial_configuration(dlt.destinations.duckdb(target))


def connect_warehouse() -> duckdb.DuckDBPyConnection:
    """The run's connection to the warehouse, with DuckDB's memory capped (``duckdb_memory_limit``).

    Why the cap: DuckDB keeps the blocks it writes in its buffer pool up to its default limit (80 % of
    RAM), so without one the loader's peak memory grew with the data, all of the growth in the load and
    final checkpoint (the page walk itself stayed flat; bench/tuning-history.md, round 2).
    With a cap DuckDB evicts written blocks (and spills, if a merge ever needs more).
    """
    return duckdb.connect(str(settings.warehouse_path()), config=duckdb_config())


def duckdb_config() -> dict[str, str]:
    """The DuckDB settings of the loader's connections (the warehouse's and a full refresh's)."""
    limit = str(dlt.config.get("sources.extract.duckdb_memory_limit") or DUCKDB_MEMORY_LIMIT)
    return {} if limit.lower() in ("", "0", "none") else {"memory_limit": limit}


def cursor_positions(pipeline: dlt.Pipeline) -> str:
    """Where each resource's incremental cursor stands before a run (``orders=2026-11-28T…``,
    ``events=536940``), for the run log's record of what the run read."""
    positions = []
    for source_state in (pipeline.state.get("sources") or {}).values():
        for resource, state in sorted((source_state.get("resources") or {}).items()):
            value = state.get("last_value", state.get("last_id"))
            if value is not None:
                positions.append(f"{resource}={value}")
    return ", ".join(positions)


def add_counts(counts: dict[str, int], pipeline: dlt.Pipeline) -> None:
    """Add the rows per table that the pipeline's last run normalized (dlt's own tables excluded)."""
    trace = pipeline.last_trace
    info = trace.last_normalize_info if trace else None
    for table, rows in (info.row_counts if info else {}).items():
        if not table.startswith("_dlt"):
            counts[table] = counts.get(table, 0) + rows


def step_times(pipeline: dlt.Pipeline) -> str:
    """``extract 1.20s, normalize 0.10s, load 0.30s`` from the pipeline's last trace."""
    trace = pipeline.last_trace
    return ", ".join(
        f"{st.step} {(st.finished_at - st.started_at).total_seconds():.2f}s"
        for st in (trace.steps if trace else [])
        if st.finished_at and st.step != "run"
    )


def prepare_pipeline(
    service: Service,
    result: RunResult,
    counts: dict[str, int],
    connection: duckdb.DuckDBPyConnection | None = None,
    sync: bool = False,
) -> tuple[dlt.Pipeline, ServiceConfig]:
    """The service's pipeline, in step with the warehouse and with no pending package left, and its
    resolved configuration (base URL, credentials, knobs).

    With ``sync`` the destination sync that ``pipeline.run`` would do is done here, for a pipeline whose
    extract runs elsewhere (a forked child, extract/forked.py) and which is only loaded in this process.
    Rows of a finished pending package are added to ``counts``; what the run read goes to ``result.inputs``.
    """
    cfg = service_config(service.name, service.auth)
    pipeline = make_pipeline(service.name, connection)
    if connection is not None:
        pipeline = align_with_warehouse(pipeline, connection)
    if sync and not dltcompat.state_restored(pipeline):
        pipeline.sync_destination()
        dltcompat.mark_state_restored(pipeline)  # what run() sets after its own sync
    discard_unfinished_refresh(service)
    # a package a killed run left (by this loader or by the stream) loads exactly once, and the cursor
    # is the warehouse's (dlt alone resumes at least once: extract/resume.py)
    if resume.finish_pending(pipeline):
        add_counts(counts, pipeline)
    positions = cursor_positions(pipeline) or "none (first load)"
    result.inputs[service.name] = f"{cfg.base_url}; cursors: {positions}"
    docdrift.check_before_load(service, cfg)  # its OpenAPI document, before any data request
    return pipeline, cfg


def discard_unfinished_refresh(service: Service) -> str | None:
    """Remove what a full refresh that never committed left (killed, or failed before its clean-up);
    it never touched ``raw_<service>``, so the run goes on from the pipeline's own state."""
    left = Refresh.of(service.name).discard()
    if left:
        log.warning(
            "%s: discarded what an unfinished full refresh left (%s); raw_%s was never touched by it",
            service.name,
            left,
            service.name,
        )
    return left


class _NoPandas:
    """A meta-path finder that makes ``import pandas`` fail; installed only for one probe below."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is not needed by the Arrow conversions of the loader")


def skip_pandas_in_arrow() -> None:
    """Tell pyarrow that pandas is absent, without hiding pandas from anyone who imports it.

    Why: pyarrow imports pandas lazily on its first conversion from Python objects (``pa.array([...])``,
    a scalar in ``pc.less(col, 5)``, dlt's ``_dlt_load_id`` column), to check whether the input is a
    pandas object. The loader never hands pandas objects to Arrow, yet that import cost seconds of CPU
    per run (py-spy; bench/tuning-history.md; pandas comes with the dev dependencies). pyarrow's
    shim remembers a failed import for its *implicit* checks only: ``to_pandas()``/``from_pandas()``
    and a plain ``import pandas`` still work afterwards.
    """
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)
    try:
        pa.array([0])
    finally:
        sys.meta_path.remove(blocker)
