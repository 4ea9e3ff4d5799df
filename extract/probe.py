""" "Anything new?": a cheap check per service before any dlt pipeline is built for it.

Why: a run with nothing new in the services used to build every service's dlt pipeline (configuration
resolution, state sync, a forked child per group of services), walk each endpoint's re-read window,
normalize and "load" zero rows. Nothing of that changes the warehouse: an unchanged walk commits no
load and leaves the cursors where they were (extract/incremental.py). Yet it was nearly all of a
no-change ``elt run``'s time (py-spy; bench/results). This module answers the question with the
requests the walk would have started with, and the loader skips the service when the answer is "no".

A service counts as unchanged only when every one of these holds (any doubt: the service loads as
before, so a wrong "unchanged" can only come from the source itself):

* its local dlt state is the one the warehouse committed last (same version and hash; the check of
  extract/statesync.py, read without dlt), no load package is pending in its working folder and no
  unfinished full refresh is left - so the cursors read here are the ones a load would start from;
* nothing is left for the post-load deletions to remove (extract/deletes.py is idempotent: a run
  killed between a load and its deletions is mended by the next load, so such a service loads);
* the service's OpenAPI document (when its file names one) still matches its fields, checked first as
  before every load (a drift fails the probe, and the load that follows reports it);
* every endpoint, walked from its saved position with the same filter the load applies, yields no
  record to load and none to defer:

  - ``updated``: the re-read window (``since = last_value - lag``) holds only versions already loaded
    (the ``seen`` map of the state) and nothing at or after the run's cutoff. The walk stops at the
    first record that would load; with nothing new it is one request for a window that fits a page;
  - ``append_id``: one request for one record after the last loaded id;
  - ``snapshot`` (no cursor: a full-load resource): the whole list is read and its digest compared with
    the one of the last load (``snapshot_digests``) - what a load does anyway, minus dlt. A full-load
    resource cannot be probed cheaper than reading it (docs/sources.md says when a conditional request
    would help).

  A probe gives up after ``PROBE_PAGES`` pages (an API that ignores ``since_param`` or returns the
  whole window in tiny pages): that service loads as usual.

What a skipped service leaves is what its zero-row load left: no new load, the cursors and digests as
they were, no rows removed; the run still records its load horizon (extract/horizon.py) with the run's
cutoff, which was taken before the probe's first request, so "complete up to the cutoff" holds the same
way it holds for a walk. A change that lands after the probe is at or after the cutoff: a walk would
have left it for the next run as well.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from core import settings
from core.checksums import quote_ident
from extract import docdrift
from extract.config import ServiceConfig
from extract.incremental import CursorWindow, IdCursor
from extract.paginators import first_request, walk
from extract.progress import RunProgress
from extract.refresh import Refresh
from extract.shape import DriftTracker, conform
from extract.spec import Endpoint, Service

log = logging.getLogger("extract.probe")

PROBE_PAGES = 3  # pages a probe may walk before it leaves the question to a load
NOTHING_NEW = " (probed: nothing new, not loaded)"
PENDING_FOLDERS = ("normalize/extracted", "load/new", "load/normalized")  # dlt's pending package folders


def snapshot_digest(parents: list[pa.Table], keys: tuple[str, ...]) -> str:
    """The digest of a snapshot's pages (each sorted by key), as a load stores it in
    ``snapshot_digests``: equal digests, equal content."""
    digest = hashlib.sha256()
    for parent in parents:
        digest.update(str(parent.sort_by([(k, "ascending") for k in keys]).to_pydict()).encode())
    return digest.hexdigest()


def cursor_positions(state: dict[str, Any]) -> str:
    """Where each resource's cursor stands in a pipeline state (``orders=2026-11-28T…``,
    ``events=536940``), for the run log's record of what the run read."""
    positions = []
    for source_state in (state.get("sources") or {}).values():
        for resource, rstate in sorted((source_state.get("resources") or {}).items()):
            value = rstate.get("last_value", rstate.get("last_id"))
            if value is not None:
                positions.append(f"{resource}={value}")
    return ", ".join(positions)


@dataclass
class Verdict:
    """The probe of one service: ``unchanged`` (skip its load) or ``why`` it loads."""

    unchanged: bool
    why: str = ""
    requests: int = 0
    positions: str = ""
    endpoints: list[tuple[str, int | None, int, int]] = field(default_factory=list)


def working_folder(service: str) -> Path:
    """The service's dlt working folder (extract/pipelines.py names the pipeline ``extract_<name>``)."""
    return settings.dlt_dir() / f"extract_{service}"


def local_state(service: str) -> dict[str, Any] | None:
    """The pipeline state dlt keeps in the working folder, or None when absent or unreadable."""
    try:
        state = json.loads((working_folder(service) / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def pending_packages(service: str) -> list[str]:
    """Load packages waiting in the working folder (extracted, normalized, or being loaded)."""
    root = working_folder(service)
    found = []
    for sub in PENDING_FOLDERS:
        folder = root / sub
        if folder.is_dir():
            found += [f"{sub}/{p.name}" for p in folder.iterdir()]
    return found


def committed_state(con: duckdb.DuckDBPyConnection, service: str) -> tuple[Any, Any] | None:
    """(version, version_hash) of the newest state the warehouse committed for the service's pipeline."""
    dataset = quote_ident(f"raw_{service}")
    try:
        return con.execute(
            f"select s.version, s.version_hash from {dataset}._dlt_pipeline_state as s"
            f" join {dataset}._dlt_loads as l on l.load_id = s._dlt_load_id"
            " where s.pipeline_name = ? and l.status = 0 order by l.load_id desc limit 1",
            [f"extract_{service}"],
        ).fetchone()
    except duckdb.Error:  # no dataset or no dlt tables yet
        return None


def _tables(con: duckdb.DuckDBPyConnection, dataset: str) -> set[str]:
    rows = con.execute(
        "select table_name from information_schema.tables where table_schema = ?", [dataset]
    ).fetchall()
    return {r[0] for r in rows}


def deletions_due(con: duckdb.DuckDBPyConnection, service: Service) -> int:
    """Rows the post-load deletions would remove now (erased keys of the feed, records marked deleted):
    0 after every completed load; more when a run stopped between a load and its deletions."""
    dataset = f"raw_{service.name}"
    existing = _tables(con, dataset)
    schema = quote_ident(dataset)
    due = 0
    feed = service.hard_delete_feed
    if feed and feed in existing:
        keys = service.endpoint(feed).keys
        match = " and ".join(f"f.{quote_ident(k)} = t.{quote_ident(k)}" for k in keys)
        for table in service.hard_delete_tables:
            if table in existing:
                (n,) = con.execute(
                    f"select count(*) from {schema}.{quote_ident(table)} as t"
                    f" where exists (select 1 from {schema}.{quote_ident(feed)} as f where {match})"
                ).fetchone()
                due += n
    for ep in service.endpoints:
        soft = ep.soft_delete
        if soft is None or ep.name not in existing:
            continue
        column = quote_ident(soft.column)
        where, args = (f"{column} is not null", []) if soft.not_null else (f"{column} = ?", [soft.equals])
        (n,) = con.execute(
            f"select count(*) from {schema}.{quote_ident(ep.name)} where {where}", args
        ).fetchone()
        due += n
    return due


class _Found(Exception):
    """A record that would load: the probe's answer is known, the walk stops."""


class _GaveUp(Exception):
    """More pages than a probe walks."""


def _pages(client: Any, service: Service, ep: Endpoint, cfg: ServiceConfig, params: dict, size: int | None):
    first = first_request(ep, client.url(ep.path), size, params)
    for n, page in enumerate(walk(client, ep, first, cfg.tuning.max_pages, service.where), start=1):
        if n > PROBE_PAGES:
            raise _GaveUp
        yield page


def probe_endpoint(
    client: Any,
    service: Service,
    ep: Endpoint,
    cfg: ServiceConfig,
    source_state: dict[str, Any],
    cutoff: datetime,
    progress: RunProgress,
) -> None:
    """Walk ``ep`` from its saved position; raise ``_Found`` at the first record a load would take
    (or defer), ``_GaveUp`` past ``PROBE_PAGES``; return when there is none."""
    prog = progress.start(service.name, ep.name)
    table = f"raw_{service.name}.{ep.name}"
    drift = DriftTracker()
    size = ep.page_size or cfg.tuning.page_size
    if ep.mode == "snapshot":
        parents = []
        for page in _pages(client, service, ep, cfg, {}, size):
            parent, _ = conform(page.records, ep, table, drift)
            prog.page(page.records.num_rows, 0, page.size_bytes)
            parents.append(parent)
        saved = (source_state.get("snapshot_digests") or {}).get(ep.name)
        if saved is None or snapshot_digest(parents, ep.keys) != saved:
            raise _Found(f"{ep.name}: the snapshot differs from the last one loaded")
        prog.unchanged()
        return
    state = json.loads(json.dumps((source_state.get("resources") or {}).get(ep.name) or {}))  # a copy
    if ep.mode == "append_id":
        cursor = IdCursor(state)
        if not state.get("last_id"):
            raise _Found(f"{ep.name}: nothing loaded yet")
        for page in _pages(client, service, ep, cfg, {ep.since_param: cursor.last}, 1):
            parent, _ = conform(page.records, ep, table, drift)
            new = cursor.observe(parent, ep.keys[0]).num_rows
            prog.page(page.records.num_rows, new, page.size_bytes)
            if new:
                raise _Found(f"{ep.name}: new records after id {state.get('last_id')}")
        prog.done(NOTHING_NEW)
        return
    if state.get("last_value") is None:
        raise _Found(f"{ep.name}: nothing loaded yet")
    from extract.resources import window_lag  # the load's own window

    lag = window_lag(ep, cfg.tuning.lag_seconds)
    window = CursorWindow(state, ep.keys, ep.cursor, lag, cutoff, ep.cursor_type, ep.since_format)
    since = window.since()
    params = {ep.since_param: since} if since is not None and ep.since_param else {}
    for page in _pages(client, service, ep, cfg, params, size):
        parent, _ = conform(page.records, ep, table, drift)
        kept = window.filter(parent)
        prog.page(page.records.num_rows, kept.num_rows, page.size_bytes)
        if kept.num_rows or window.deferred:
            raise _Found(f"{ep.name}: new or changed records since {state.get('last_value')}")
    prog.done(NOTHING_NEW)


def probe_service(
    service: Service,
    cfg: ServiceConfig,
    con: duckdb.DuckDBPyConnection,
    cutoff: datetime,
    progress: RunProgress,
) -> Verdict:
    """Whether ``service`` has anything to load since its last committed load (see the module doc)."""
    state = local_state(service.name)
    if state is None:
        return Verdict(False, "no local pipeline state")
    positions = cursor_positions(state)
    if pending := pending_packages(service.name):
        return Verdict(False, f"{len(pending)} pending load package(s)", positions=positions)
    if Refresh.of(service.name).leftovers():
        return Verdict(False, "an unfinished full refresh", positions=positions)
    committed = committed_state(con, service.name)
    if committed is None or list(committed) != [state.get("_state_version"), state.get("_version_hash")]:
        return Verdict(False, "the local state is not the warehouse's newest", positions=positions)
    if due := deletions_due(con, service):
        return Verdict(False, f"{due} row(s) due for deletion", positions=positions)
    from extract.resources import make_client  # the loaders' client: same auth, retries, limits

    source_state = (state.get("sources") or {}).get(service.name) or {}
    # one attempt per request: a fault proves nothing here, and the load that follows retries it anyway
    # (with the probe's own retries a service that is down would cost its whole retry budget twice)
    once = replace(cfg, tuning=replace(cfg.tuning, http=replace(cfg.tuning.http, max_attempts=1)))
    docdrift.check_before_load(service, once)  # as before every load: the contract first (raises on drift)
    client = make_client(service, once)
    try:
        for ep in service.endpoints:
            probe_endpoint(client, service, ep, cfg, source_state, cutoff, progress)
    except _Found as found:
        return Verdict(False, str(found), client.requests_sent, positions)
    except _GaveUp:
        return Verdict(False, f"more than {PROBE_PAGES} pages to tell", client.requests_sent, positions)
    finally:
        client.session.close()
    return Verdict(True, "", client.requests_sent, positions, progress.counts(service.name))


def unchanged_services(
    services: list[Service],
    con: duckdb.DuckDBPyConnection,
    cutoff: datetime,
    configs: dict[str, ServiceConfig],
    all_or_none: bool = False,
) -> dict[str, Verdict]:
    """The services with nothing to load, each with its verdict. A probe that fails for any reason (a
    fault, a drifted record) proves nothing: that service loads, and the load reports the fault.
    ``all_or_none``: stop at the first service that loads (the caller only skips when none does)."""
    found: dict[str, Verdict] = {}
    progress = RunProgress()
    for service in services:
        started = time.monotonic()
        try:
            verdict = probe_service(service, configs[service.name], con, cutoff, progress)
        except Exception as exc:  # the load that follows reports it properly
            log.info("%s: probe failed (%s); loading as usual", service.name, type(exc).__name__)
            if all_or_none:
                break
            continue
        if verdict.unchanged:
            log.info(
                "%s: nothing new since the last load (%d requests in %.2fs): not loaded",
                service.name,
                verdict.requests,
                time.monotonic() - started,
            )
            found[service.name] = verdict
        else:
            log.info("%s: loading (%s)", service.name, verdict.why)
            if all_or_none:
                break
    return found


def skip_unchanged(
    services: list[Service], con: duckdb.DuckDBPyConnection, result: Any, all_or_none: bool = False
) -> list[Service]:
    """Probe ``services`` (at the run's cutoff, ``result.cutoff``) and return those to load; the others
    are recorded in ``result`` (an ``extract.result.RunResult``) as walked with nothing to load, as
    their zero-row load would have been. A service whose configuration is missing is returned: its load
    fails with the message that says what to set."""
    from extract.config import service_config
    from extract.errors import ExtractError

    configs: dict[str, ServiceConfig] = {}
    for service in services:
        try:
            configs[service.name] = service_config(service.name, service.auth)
        except ExtractError:
            continue
    probed = [s for s in services if s.name in configs]
    if all_or_none and len(probed) < len(services):
        return services
    unchanged = unchanged_services(probed, con, result.cutoff, configs, all_or_none)
    for name, verdict in unchanged.items():
        result.inputs[name] = f"{configs[name].base_url}; cursors: {verdict.positions or 'none'}"
        for endpoint, expected, walked, loaded in verdict.endpoints:
            result.endpoints[(name, endpoint)] = (expected, walked, loaded)
    return [s for s in services if s.name not in unchanged]
