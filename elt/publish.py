"""Publish the dbt marts to ``exports/`` as Parquet, one verified, atomically switched version at a time.

Why this shape: consumers read ``exports/current`` while new data is published. Writing in place
(especially a partitioned COPY with OVERWRITE, which deletes first) would let them see half-written
or mixed data. So every publish goes to a fresh ``versions/<id>.partial`` folder, is read back and
checked against the warehouse (row counts and a content checksum per mart, sha256 per file), gets
its ``manifest.json``, is renamed to ``versions/<id>`` and only then becomes ``current`` by one
symlink rename. Any failure before the switch leaves ``current`` exactly as it was.

The caller holds the warehouse lock (no writer changes the marts meanwhile, and no other publisher
shares the ``exports`` folder) and must not have the warehouse open read-write in this process.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from elt import checksums, pii_key, settings, versions
from elt.checksums import quote_ident, quote_literal
from elt.dbt_artifacts import MartSpec
from elt.secrets import scrub

log = logging.getLogger("elt.publish")

FORMAT_VERSION = 1
# How many committed load ids per raw schema to list in the manifest (all are counted).
MAX_LOAD_IDS = 50


class PublishError(RuntimeError):
    """The publish could not be completed and verified; the current version is untouched."""


@dataclass
class MartResult:
    name: str
    rows: int
    files: int
    bytes: int
    seconds: float


@dataclass
class PublishResult:
    version_id: str
    version_dir: Path
    marts: list[MartResult]
    seconds: float
    pruned: list[str] = field(default_factory=list)
    pii_key: dict[str, Any] = field(default_factory=dict)  # the manifest's key record (fingerprint, rotation)

    @property
    def rows(self) -> int:
        return sum(m.rows for m in self.marts)


def _relation_sql(con: duckdb.DuckDBPyConnection, spec: MartSpec) -> str:
    """The fully qualified relation, using dbt's database name when it is attached under that name.

    dbt-duckdb names the database after the file stem; when a different file is being published (or
    it was attached under another alias) the connection's own database is used.
    """
    attached = {row[0] for row in con.execute("select database_name from duckdb_databases()").fetchall()}
    (current,) = con.execute("select current_database()").fetchone()
    database = spec.database if spec.database in attached else current
    found = con.execute(
        "select count(*) from information_schema.tables "
        "where table_catalog = ? and table_schema = ? and table_name = ?",
        [database, spec.schema, spec.alias],
    ).fetchone()[0]
    if not found:
        raise PublishError(
            f"{spec.unique_id}: relation {database}.{spec.schema}.{spec.alias} not found in the warehouse "
            "(was `dbt build` run against this warehouse?)"
        )
    return ".".join(quote_ident(p) for p in (database, spec.schema, spec.alias))


def _workers(con: duckdb.DuckDBPyConnection, marts: int) -> int:
    """Marts written (and verified) at once: one per DuckDB thread.

    Why threads: most marts are small, and a small COPY or read-back runs on one DuckDB thread whatever
    ``threads`` says, so one mart after another left a core idle. DuckDB releases the GIL while a query
    runs, so Python threads with a cursor each keep every core busy.
    """
    (threads,) = con.execute("select current_setting('threads')").fetchone()
    return max(1, min(int(threads), marts))


def _largest_first(con: duckdb.DuckDBPyConnection, specs: list[MartSpec]) -> list[MartSpec]:
    """Specs ordered by estimated size, so the longest COPY starts first and the threads finish together."""
    sizes = {
        (db, schema, name): size or 0
        for db, schema, name, size in con.execute(
            "select database_name, schema_name, table_name, estimated_size from duckdb_tables()"
        ).fetchall()
    }
    return sorted(specs, key=lambda s: -sizes.get((s.database, s.schema, s.alias), 0))


def _columns(con: duckdb.DuckDBPyConnection, relation_sql: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"describe select * from {relation_sql}").fetchall()]


def _write_mart(con: duckdb.DuckDBPyConnection, spec: MartSpec, relation: str, staging: Path) -> Path:
    """COPY one mart into the staging folder; return the file or folder written."""
    options = "FORMAT parquet, COMPRESSION zstd"
    if spec.partition_by:
        names = [c for c, _ in _columns(con, relation)]
        if spec.partition_by not in names:
            raise PublishError(
                f"{spec.unique_id}: publish_partition_by column {spec.partition_by!r} not in {names}"
            )
        target = staging / spec.name
        con.execute(
            f"copy (select * from {relation}) to {quote_literal(str(target))} "
            f"({options}, PARTITION_BY ({quote_ident(spec.partition_by)}), WRITE_PARTITION_COLUMNS true)"
        )
        if not any(target.rglob("*.parquet")):  # an empty mart: keep one empty file so the schema ships
            target.mkdir(parents=True, exist_ok=True)
            con.execute(
                f"copy (select * from {relation} limit 0) to "
                f"{quote_literal(str(target / 'data_empty.parquet'))} ({options})"
            )
        return target
    target = staging / f"{spec.name}.parquet"
    con.execute(f"copy (select * from {relation}) to {quote_literal(str(target))} ({options})")
    return target


def _mart_files(written: Path) -> list[Path]:
    return [written] if written.is_file() else sorted(written.rglob("*.parquet"))


def _partition_of(path: Path, root: Path) -> dict[str, str]:
    """``{"order_month": "2026-01-01"}`` from a hive path below the mart folder."""
    parts = path.relative_to(root).parts[:-1]
    return dict(p.split("=", 1) for p in parts if "=" in p)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _verify_mart(
    con: duckdb.DuckDBPyConnection, spec: MartSpec, relation: str, written: Path, staging: Path
) -> dict[str, Any]:
    """Read the written files back and compare them with the source; return the manifest entry."""
    files = _mart_files(written)
    if not files:
        raise PublishError(f"{spec.name}: COPY wrote no Parquet files into {written}")
    listing = checksums.parquet_list(files)
    reader = f"read_parquet({listing}, hive_partitioning = false)"
    file_columns = _columns(con, reader)
    source_columns = dict(_columns(con, relation))
    read_names = [n for n, _ in file_columns]
    if read_names != list(source_columns):
        raise PublishError(f"{spec.name}: columns read back {read_names} differ from {list(source_columns)}")
    src_rows, src_sum = con.execute(checksums.content_query(relation, file_columns)).fetchone()
    file_rows, file_sum = con.execute(checksums.content_query(reader)).fetchone()
    meta_rows = dict(
        con.execute(f"select file_name, num_rows from parquet_file_metadata({listing})").fetchall()
    )
    per_file_total = sum(meta_rows.values())
    if not (src_rows == file_rows == per_file_total):
        raise PublishError(
            f"{spec.name}: row count mismatch: warehouse {src_rows}, read back {file_rows}, "
            f"file metadata {per_file_total}"
        )
    if src_sum != file_sum:
        raise PublishError(f"{spec.name}: content checksum mismatch: warehouse {src_sum}, files {file_sum}")
    entries = []
    for f in files:
        _fsync(f)
        entry: dict[str, Any] = {
            "path": str(f.relative_to(staging)),
            "rows": int(meta_rows[str(f)]),
            "bytes": f.stat().st_size,
            "sha256": checksums.sha256_file(f),
        }
        if spec.partition_by:
            entry["partition"] = _partition_of(f, written)
        entries.append(entry)
    for d in {f.parent for f in files}:
        versions.fsync_dir(d)
    return {
        "unique_id": spec.unique_id,
        "relation": f"{spec.schema}.{spec.alias}",
        "description": spec.description,
        "rows": int(src_rows),
        "partition_by": spec.partition_by,
        "schema": [
            {
                "name": name,
                "type": ftype,
                "warehouse_type": source_columns[name],
                "description": spec.column_descriptions.get(name, ""),
            }
            for name, ftype in file_columns
        ],
        "content_checksum": {"algorithm": checksums.CONTENT_ALGORITHM, "value": file_sum},
        "files": entries,
    }


def source_loads(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Per raw schema: the committed dlt load ids (newest first, capped) behind this publish."""
    schemas = [
        r[0]
        for r in con.execute(
            "select distinct table_schema from information_schema.tables "
            "where table_name = '_dlt_loads' and table_schema like 'raw\\_%' escape '\\' order by 1"
        ).fetchall()
    ]
    out: dict[str, Any] = {}
    for schema in schemas:
        rows = con.execute(
            f"select load_id, inserted_at from {quote_ident(schema)}._dlt_loads "
            "where status = 0 order by load_id desc"
        ).fetchall()
        out[schema] = {
            "committed_loads": len(rows),
            "latest_load_id": rows[0][0] if rows else None,
            "latest_inserted_at": rows[0][1].isoformat() if rows and rows[0][1] else None,
            "load_ids": [r[0] for r in rows[:MAX_LOAD_IDS]],
        }
    return out


def _apply_exports_mode(folder: Path, mode: int, recurse: bool = True) -> None:
    """Give the published files ``mode`` (``SHOP_EXPORTS_MODE``) and their folders the same with search
    where it allows reading. Why explicit: every entry point runs with an owner-only umask (the warehouse
    and run folder hold personal data), but the exports are meant to be shared."""
    dir_mode = mode | ((mode & 0o444) >> 2)
    os.chmod(folder, dir_mode)
    for entry in folder.iterdir():
        if entry.is_symlink():
            continue
        if entry.is_dir():
            if recurse:
                _apply_exports_mode(entry, mode)
        else:
            os.chmod(entry, mode)


def publish(
    specs: list[MartSpec],
    *,
    warehouse: Path,
    exports: Path,
    dbt_invocation: dict[str, Any] | None = None,
    keep: int = versions.DEFAULT_KEEP,
    after_write: Callable[[Path], None] | None = None,
    rotate_pii_key: bool = False,
    amend_manifest: Callable[[Path, dict[str, Any]], None] | None = None,
) -> PublishResult:
    """Export ``specs`` from ``warehouse`` as a new version under ``exports`` and make it current.

    ``dbt_invocation`` ({"invocation_id", ...}) is recorded in the manifest. ``after_write`` is called
    with the staging folder after the COPYs and before verification (fault-injection hook for tests).
    The manifest records the PII key's fingerprint; a key other than the current version's raises
    ``pii_key.PiiKeyError`` before anything is written, unless ``rotate_pii_key`` (see elt/pii_key.py).
    Raises ``PublishError`` (current version untouched, staging removed) when anything does not check out.
    ``amend_manifest(staging, manifest)`` may add files and entries before the manifest is written
    (``--allow-partial`` carries stale marts from the current version, elt/partial.py).
    """
    if not specs:
        raise PublishError("no models tagged 'publish' in the dbt manifest: nothing to publish")
    if not warehouse.exists():
        raise PublishError(f"warehouse {warehouse} does not exist: run the loaders and dbt first")
    built_with = (dbt_invocation or {}).get("pii_key_fingerprint")
    key_record = pii_key.manifest_entry(exports, rotate=rotate_pii_key, built_with=built_with)
    started = time.monotonic()
    exports.mkdir(parents=True, exist_ok=True)
    versions.versions_dir(exports).mkdir(exist_ok=True)
    stale = versions.remove_partials(exports)
    if stale:
        log.warning("removed %d unfinished publish folder(s) left by an earlier crash: %s", len(stale), stale)

    version_id = versions.new_version_id()
    staging = versions.versions_dir(exports) / (version_id + versions.PARTIAL_SUFFIX)
    final = versions.versions_dir(exports) / version_id
    staging.mkdir()
    results: list[MartResult] = []
    try:
        limit = settings.publish_memory_limit()  # bounded memory whatever the marts' size
        config = {"memory_limit": limit} if limit else {}
        with duckdb.connect(str(warehouse), read_only=True, config=config) as con:
            workers = _workers(con, len(specs))
            with ThreadPoolExecutor(workers, thread_name_prefix="publish") as pool:

                def write(spec: MartSpec) -> tuple[MartSpec, str, Path, float]:
                    t0 = time.monotonic()
                    cur = con.cursor()  # one cursor per thread: a connection runs one query at a time
                    try:
                        relation = _relation_sql(cur, spec)
                        path = _write_mart(cur, spec, relation, staging)
                        return spec, relation, path, time.monotonic() - t0
                    finally:
                        cur.close()

                written = list(pool.map(write, _largest_first(con, specs)))
                if after_write is not None:
                    after_write(staging)

                def verify(item: tuple[MartSpec, str, Path, float]) -> tuple[dict[str, Any], float]:
                    spec, relation, path, write_seconds = item
                    t0 = time.monotonic()
                    cur = con.cursor()
                    try:
                        entry = _verify_mart(cur, spec, relation, path, staging)
                        return entry, write_seconds + time.monotonic() - t0
                    finally:
                        cur.close()

                verified = dict(zip([w[0].name for w in written], pool.map(verify, written), strict=True))
            marts: dict[str, Any] = {}
            for spec in specs:  # manifest and log in the dbt manifest's order, whatever order the threads ran
                entry, took = verified[spec.name]
                marts[spec.name] = entry
                size = sum(f["bytes"] for f in entry["files"])
                results.append(MartResult(spec.name, entry["rows"], len(entry["files"]), size, took))
                log.info(
                    "published %s: %d rows, %d file(s), %.1f MiB, %.2fs",
                    spec.name,
                    entry["rows"],
                    len(entry["files"]),
                    size / 2**20,
                    took,
                )
            loads = source_loads(con)
            duckdb_version = con.execute("select version()").fetchone()[0]
        manifest = {
            "format_version": FORMAT_VERSION,
            "version": version_id,
            "created_at": datetime.now(UTC).isoformat(),
            "dbt": dbt_invocation or {},
            "sources": loads,
            "publisher": {"duckdb": duckdb_version, "warehouse": warehouse.name},
            "pii_key": key_record,
            "marts": marts,
        }
        if amend_manifest is not None:
            amend_manifest(staging, manifest)
        text = json.dumps(manifest, indent=2, sort_keys=False, default=str)
        if scrub(text) != text:
            raise PublishError("refusing to publish: a secret value would appear in manifest.json")
        versions.write_atomic(staging / versions.MANIFEST, text + "\n")
        _apply_exports_mode(staging, settings.exports_mode())
        os.rename(staging, final)
        versions.fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    versions.switch_current(exports, version_id)
    for folder in (exports, versions.versions_dir(exports)):  # CURRENT and the folders above a version
        _apply_exports_mode(folder, settings.exports_mode(), recurse=False)
    pruned = versions.prune(exports, keep)
    if pruned:
        log.info("removed %d old version(s): %s", len(pruned), ", ".join(pruned))
    seconds = time.monotonic() - started
    log.info(
        "version %s is current: %d marts, %d rows, %.2fs -> %s",
        version_id,
        len(results),
        sum(r.rows for r in results),
        seconds,
        final,
    )
    return PublishResult(version_id, final, results, seconds, pruned, key_record)
