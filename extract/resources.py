"""Build one dlt source per service from its declarative spec.

Each endpoint becomes a resource whose generator walks the pages (in a prefetch thread, so HTTP and
JSON parsing overlap dlt writing Parquet), conforms every page to Arrow with the declared schema,
filters it through the incremental window, and yields page-level Arrow tables - no per-row Python.
Child tables (``customers__addresses``, ``orders__items``) are emitted from the same walk as table
variants that merge with ``merge_key`` = the parent's key, so on merge a parent's children are
replaced wholesale (an address removed at the source disappears from raw).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import dlt
import pyarrow as pa
import pyarrow.compute as pc
import requests
from dlt.extract.source import DltSource

from extract.auth import ApiKeyAuth, Auth, BasicAuth, BearerAuth, NoAuth, OAuth2ClientCredentials
from extract.config import ServiceConfig
from extract.http import ServiceClient
from extract.incremental import CursorWindow, IdCursor, key_strings
from extract.pages import Page
from extract.paginators import first_request, walk
from extract.probe import snapshot_digest
from extract.progress import ResourceProgress, RunProgress
from extract.shape import DriftTracker, conform
from extract.spec import TIME_CURSORS, Endpoint, Service

log = logging.getLogger("extract.resources")

SCHEMA_CONTRACT = {"tables": "evolve", "columns": "evolve", "data_type": "freeze"}
_DONE = object()


def make_auth(service: Service, cfg: ServiceConfig, session: requests.Session) -> Auth:
    """The auth object for the service's scheme (``auth`` of its source file)."""
    creds = cfg.credentials
    spec = service.auth_options
    if service.auth == "none":
        return NoAuth()
    if service.auth == "api_key":
        return ApiKeyAuth(creds["api_key"], spec.header, spec.query_param)
    if service.auth == "bearer":
        return BearerAuth(creds["token"])
    if service.auth == "basic":
        return BasicAuth(creds["username"], creds["password"])
    policy = cfg.tuning.http
    token_url = spec.token_url
    if not urlsplit(token_url).scheme:  # a path on the service's own base URL
        token_url = cfg.base_url.rstrip("/") + "/" + token_url.lstrip("/")
    return OAuth2ClientCredentials(
        service.name,
        token_url,
        creds["client_id"],
        creds["client_secret"],
        session,
        (policy.connect_timeout, policy.read_timeout),
        max_attempts=policy.max_attempts,
        backoff_base=policy.backoff_base,
        backoff_max=policy.backoff_max,
        max_retry_after=policy.max_retry_after,
        scopes=spec.scopes,
    )


def make_client(service: Service, cfg: ServiceConfig) -> ServiceClient:
    """A client with its own connection pool (one per service)."""
    session = requests.Session()
    session.trust_env = False  # loopback services: never route through a proxy from the environment
    return ServiceClient(
        service.name,
        cfg.base_url,
        make_auth(service, cfg, session),
        cfg.tuning.http,
        session,
        source_file=service.where,
    )


def _prefetch(pages: Iterator[Page], depth: int, convert: Any) -> Iterator[Any]:
    """Run ``convert(page)`` over ``pages`` in a thread, at most ``depth`` results ahead (bounded memory)."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for page in pages:
                item = convert(page)
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            q.put(exc)

    thread = threading.Thread(target=produce, name="extract-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class Batches:
    """Page tables gathered per table name and handed to dlt in batches of about ``rows`` parent rows.

    Why: dlt's Arrow extractor does a fixed amount of Python work per item it receives (derive the table
    schema from the Arrow schema, apply contract filters, write a row group), whatever its size. Handed
    one page per item, that fixed work was a visible share of a full load's GIL time (py-spy;
    bench/tuning-history.md, round 2); ten pages per item cut it tenfold. Memory stays bounded: at most
    ``rows`` parent rows (plus their children) are held here, independent of the data size. A parent's
    children are flushed together with it.
    """

    def __init__(self, rows: int):
        self.rows = max(1, rows)
        self.tables: dict[str, list[pa.Table]] = {}
        self.parent_rows = 0

    def add(
        self, parent_name: str, parent: pa.Table, children: dict[str, pa.Table]
    ) -> list[tuple[str, pa.Table]]:
        """Keep one page's tables; return the batches due now (parent first), else an empty list."""
        if parent.num_rows:
            self.tables.setdefault(parent_name, []).append(parent)
            self.parent_rows += parent.num_rows
        for name, table in children.items():
            if table.num_rows:
                self.tables.setdefault(name, []).append(table)
        return self.flush() if self.parent_rows >= self.rows else []

    def flush(self) -> list[tuple[str, pa.Table]]:
        """Everything held, one table per name (pages concatenated without copying)."""
        out = [
            (name, tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default"))
            for name, tables in self.tables.items()
        ]
        self.tables = {}
        self.parent_rows = 0
        return out


def _child_hints(ep: Endpoint, child: str) -> Any:
    return dlt.mark.make_hints(
        table_name=f"{ep.name}__{child}",
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        primary_key=[*ep.keys, ep.children[child]],
        merge_key=list(ep.keys),
    )


def _deferred_hints(ep: Endpoint) -> Any:
    """``<endpoint>__deferred``: the newest version per key a run left for the next one (ids and cursor)."""
    return dlt.mark.make_hints(
        table_name=f"{ep.name}__deferred",
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        primary_key=list(ep.keys),
        columns={ep.cursor: {"dedup_sort": "desc"}},
    )


def _children_of(kept: pa.Table, children: dict[str, pa.Table], keys: tuple[str, ...]) -> dict[str, pa.Table]:
    """The child rows whose parent is in ``kept`` (the parents a filter dropped take their children)."""
    if len(keys) == 1:
        wanted = kept.column(keys[0]).combine_chunks()
        return {name: c.filter(pc.is_in(c.column(keys[0]), value_set=wanted)) for name, c in children.items()}
    wanted = pa.array(key_strings(kept, keys, list(range(kept.num_rows))), pa.string())
    out = {}
    for name, c in children.items():
        mine = pa.array(key_strings(c, keys, list(range(c.num_rows))), pa.string())
        out[name] = c.filter(pc.is_in(mine, value_set=wanted))
    return out


def window_lag(ep: Endpoint, lag_seconds: float) -> float:
    """The endpoint's lag in cursor units: its own, else the service's knob for a time cursor, else 0."""
    if ep.lag is not None:
        return ep.lag
    return lag_seconds if ep.cursor_type in TIME_CURSORS else 0


def endpoint_resource(
    service: Service,
    ep: Endpoint,
    client: ServiceClient,
    cfg: ServiceConfig,
    cutoff: datetime,
    progress: RunProgress,
    drift: DriftTracker,
) -> Any:
    """The dlt resource of one endpoint."""
    tuning = cfg.tuning
    table = f"raw_{service.name}.{ep.name}"
    # newest version wins when one batch holds a record twice; set on the parent table only
    parent_columns = {ep.cursor: {"dedup_sort": "desc"}} if ep.mode == "updated" and ep.cursor else None

    def pages_from(
        params: dict[str, Any], prog: ResourceProgress
    ) -> Iterator[tuple[Page, pa.Table, dict[str, pa.Table]]]:
        first = first_request(ep, client.url(ep.path), ep.page_size or tuning.page_size, params)
        pages = walk(client, ep, first, tuning.max_pages, service.where, on_total=prog.reported)
        return _prefetch(pages, tuning.prefetch_pages, lambda p: (p, *conform(p.records, ep, table, drift)))

    def gen() -> Iterator[Any]:
        prog = progress.start(service.name, ep.name)
        prog.every_pages = max(1, tuning.progress_every_pages)
        hinted: set[str] = set()

        def emit_parent(parent: pa.Table) -> Iterator[Any]:
            """The parent's rows; the first page also declares its table-only hints (dedup order)."""
            if parent.num_rows == 0:
                return
            if ep.name not in hinted and parent_columns:
                hinted.add(ep.name)
                hints = dlt.mark.make_hints(table_name=ep.name, columns=parent_columns)
                yield dlt.mark.with_hints(parent, hints, create_table_variant=True)
            else:
                yield dlt.mark.with_table_name(parent, ep.name)

        def emit_children(children: dict[str, pa.Table]) -> Iterator[Any]:
            for child, ctable in children.items():
                if ctable.num_rows == 0:
                    continue
                if child not in hinted:
                    hinted.add(child)
                    yield dlt.mark.with_hints(ctable, _child_hints(ep, child), create_table_variant=True)
                else:
                    yield dlt.mark.with_table_name(ctable, f"{ep.name}__{child}")

        def emit_batches(due: list[tuple[str, pa.Table]]) -> Iterator[Any]:
            for name, batch in due:
                if name == ep.name:
                    yield from emit_parent(batch)
                else:
                    yield from emit_children({name: batch})

        batches = Batches(tuning.batch_rows)

        if ep.mode == "snapshot":
            parents, kids = [], []
            for page, parent, children in pages_from({}, prog):
                prog.page(page.records.num_rows, parent.num_rows, page.size_bytes)
                parents.append(parent)
                kids.append(children)
            digest = snapshot_digest(parents, ep.keys)  # the probe compares the same (extract/probe.py)
            digests = dlt.current.source_state().setdefault("snapshot_digests", {})
            if digest == digests.get(ep.name):
                prog.unchanged()
                return
            digests[ep.name] = digest
            prog.rows_loaded = sum(p.num_rows for p in parents)
            for parent, children in zip(parents, kids, strict=True):
                if parent.num_rows:
                    yield parent
                yield from emit_children(children)
            prog.done()
            return

        state = dlt.current.resource_state()
        if ep.mode == "append_id":
            cursor = IdCursor(state)
            for page, parent, _children in pages_from({ep.since_param: cursor.last}, prog):
                parent = cursor.observe(parent, ep.keys[0])
                prog.page(page.records.num_rows, parent.num_rows, page.size_bytes)
                for _name, batch in batches.add(ep.name, parent, {}):
                    yield batch
            for _name, batch in batches.flush():
                yield batch
            cursor.commit()
            prog.done()
            return

        window = CursorWindow(
            state,
            ep.keys,
            ep.cursor,
            window_lag(ep, tuning.lag_seconds),
            cutoff,
            ep.cursor_type,
            ep.since_format,
        )
        since = window.since()
        params = {ep.since_param: since} if since is not None and ep.since_param else {}
        for page, parent, children in pages_from(params, prog):
            kept = window.filter(parent)
            if kept.num_rows != parent.num_rows and children:
                children = _children_of(kept, children, ep.keys)
            window.observe(kept)
            prog.page(page.records.num_rows, kept.num_rows, page.size_bytes)
            yield from emit_batches(batches.add(ep.name, kept, children))
        yield from emit_batches(batches.flush())
        deferred = window.deferred_ids()
        if deferred is not None:  # in the same package as the load: raw and this table commit together
            yield dlt.mark.with_hints(deferred, _deferred_hints(ep), create_table_variant=True)
        window.commit()
        note = f" ({window.skipped_known} already loaded, {window.deferred} left for the next run)"
        prog.done(note if window.skipped_known or window.deferred else "")

    if ep.mode == "append_id":
        disposition: Any = "append"
    else:  # snapshots merge too: "replace" would truncate the table on a run that yields nothing
        disposition = {"disposition": "merge", "strategy": "delete-insert"}
    return dlt.resource(
        gen,
        name=ep.name,
        table_name=ep.name,
        write_disposition=disposition,
        primary_key=list(ep.keys),
        schema_contract=SCHEMA_CONTRACT,
    )


def build_source(
    service: Service, cfg: ServiceConfig, cutoff: datetime, progress: RunProgress, drift: DriftTracker
) -> tuple[DltSource, ServiceClient]:
    """The dlt source of one service and the client it uses (for request stats)."""
    client = make_client(service, cfg)
    resources = [
        endpoint_resource(service, ep, client, cfg, cutoff, progress, drift) for ep in service.endpoints
    ]

    @dlt.source(name=service.name, max_table_nesting=0, schema_contract=SCHEMA_CONTRACT)
    def source() -> Any:
        return resources

    return source(), client
