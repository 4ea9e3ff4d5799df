"""Publish the dbt marts to ``exports/`` as Parquet, one verified, atomically switched version at a time.

Why this shape: consumers read ``exports/current`` while new data is published. Writing in place
(especially a partitioned COPY with OVERWRITE, which deletes first) would let them see half-written
or mixed data. So every publish goes to a fresh ``versions/<id>.partial`` folder, is read back and
checked against the warehouse (row counts and a content checksum per mart, sha256 per file), gets
its ``manifest.json``, is renamed to ``versions/<id>`` and only then becomes ``current`` by one
symlink rename. Any failure before the switch leaves ``current`` exactly as it was.

What the files look like is chosen for readers (docs/publishing.md, "Reading with each library"):

- A partitioned mart is a folder of flat files, one per partition value
  (``fct_orders/placed_month_2026-01-01.parquet``), each holding every column, the partition column
  included, with its own type. Why not Hive folders (``placed_month=2026-01-01/``): with the column in
  the files *and* in the folder name, pyarrow and pandas refuse the dataset (the folder's inferred
  string and the file's date do not merge); with the column only in folder names every reader infers
  another type (string, int32, int64, date). Flat files read the same in all of them.
- Timestamps are written UTC-adjusted (``timestamptz``): the warehouse keeps naive UTC timestamps, and
  a naive Parquet timestamp reads back without a zone in every library.
- Each file's key-value metadata names the mart, the version and the format (``KV_METADATA``), so a
  file that travels alone still says where it came from.

Attachments (the report) are files built from the verified staging folder before the manifest is
written: they are listed in it with their sha256, and a failure leaves ``current`` untouched too.

The caller holds the warehouse lock (no writer changes the marts meanwhile, and no other publisher
shares the ``exports`` folder) and must not have the warehouse open read-write in this process, unless
it hands that connection in (``publish(..., connection=...)``).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson

from core import checksums, ops_log, pii_key, settings
from core.checksums import quote_ident, quote_literal
from core.secrets import scrub
from publish import carry, partition, versions
from transform.dbt_artifacts import MartSpec

log = logging.getLogger("elt.publish")

FORMAT_VERSION = 2  # 2: flat partition files, UTC-adjusted timestamps, git revision, high-water marks
# Key-value metadata written into every Parquet file (``KV_METADATA``): which mart and version it is.
KV_PREFIX = "shop_elt."
# How many committed load ids per raw schema to list in the manifest (all are counted).
MAX_LOAD_IDS = 50


class PublishError(RuntimeError):
    """The publish could not be completed and verified; the current version is untouched."""


@dataclass(frozen=True)
class Attachment:
    """A file built into the version from its verified Parquet (e.g. the report), before the switch.

    ``build(staging, manifest)`` gets the staging folder and the manifest so far (marts, sources,
    version) and returns the file it wrote inside the folder plus a small JSON-able detail for the
    manifest. Why a callable and not an import: publish stays one job; what consumes the exports
    (report/) sits above it and is handed in by the flow.
    """

    name: str
    build: Callable[[Path, dict[str, Any]], tuple[Path, dict[str, Any]]]


@dataclass
class MartResult:
    name: str
    rows: int
    files: int
    bytes: int
    seconds: float
    carried: bool = False  # the current version's files, linked (publish/carry.py): nothing written
    linked_bytes: int = 0  # of a partitioned mart: the unchanged partitions' files, linked


@dataclass
class PublishResult:
    version_id: str
    version_dir: Path
    marts: list[MartResult]
    seconds: float
    pruned: list[str] = field(default_factory=list)
    pii_key: dict[str, Any] = field(default_factory=dict)  # the manifest's key record (fingerprint, rotation)
    attachments: dict[str, Any] = field(default_factory=dict)  # the manifest's attachment entries
    unchanged: bool = False  # every mart equalled the current version's: no new version (reuse=True)

    @property
    def rows(self) -> int:
        return sum(m.rows for m in self.marts)

    @property
    def bytes_written(self) -> int:
        """Parquet bytes this publish wrote (carried marts' files are links, not writes)."""
        return sum(m.bytes - m.linked_bytes for m in self.marts if not m.carried)


@dataclass(frozen=True)
class _Catalog:
    """The warehouse's databases and relations, read once per publish (two catalog queries, whatever the
    number of marts)."""

    attached: frozenset[str]
    current: str
    sizes: dict[tuple[str, str, str], int]  # (database, schema, name) of every table and view -> size

    @classmethod
    def read(cls, con: duckdb.DuckDBPyConnection) -> _Catalog:
        rows = con.execute("select database_name, current_database() from duckdb_databases()").fetchall()
        relations = con.execute(
            "select database_name, schema_name, table_name, coalesce(estimated_size, 0) from duckdb_tables() "
            "union all select database_name, schema_name, view_name, 0 from duckdb_views() where not internal"
        ).fetchall()
        return cls(frozenset(r[0] for r in rows), rows[0][1], {(d, s, n): z for d, s, n, z in relations})

    def relation_sql(self, spec: MartSpec) -> str:
        """The fully qualified relation, using dbt's database name when it is attached under that name.

        dbt-duckdb names the database after the file stem; when a different file is being published (or
        it was attached under another alias) the connection's own database is used.
        """
        database = spec.database if spec.database in self.attached else self.current
        if (database, spec.schema, spec.alias) not in self.sizes:
            raise PublishError(
                f"{spec.unique_id}: relation {database}.{spec.schema}.{spec.alias} not found in the "
                "warehouse (was `dbt build` run against this warehouse?)"
            )
        return ".".join(quote_ident(p) for p in (database, spec.schema, spec.alias))

    def largest_first(self, specs: list[MartSpec]) -> list[MartSpec]:
        """Specs ordered by estimated size, so the longest COPY starts first and the threads finish
        together."""

        def size(s: MartSpec) -> int:
            database = s.database if s.database in self.attached else self.current
            return self.sizes.get((database, s.schema, s.alias), 0)

        return sorted(specs, key=lambda s: -size(s))


def _workers(con: duckdb.DuckDBPyConnection, marts: int) -> int:
    """Marts written (and verified) at once: one per DuckDB thread.

    Why threads: most marts are small, and a small COPY or read-back runs on one DuckDB thread whatever
    ``threads`` says, so one mart after another left a core idle. DuckDB releases the GIL while a query
    runs, so Python threads with a cursor each keep every core busy.
    """
    (threads,) = con.execute("select current_setting('threads')").fetchone()
    return max(1, min(int(threads), marts))


def _columns(con: duckdb.DuckDBPyConnection, relation_sql: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"describe select * from {relation_sql}").fetchall()]


def _export_type(dtype: str) -> str:
    """The type a warehouse column is written as: naive timestamps (UTC by the project's convention) as
    ``timestamptz``, so the files say UTC (``isAdjustedToUTC``); everything else as it is."""
    naive = dtype.upper().startswith("TIMESTAMP") and "TIME ZONE" not in dtype.upper()
    return "TIMESTAMP WITH TIME ZONE" if naive else dtype


def _export_select(columns: list[tuple[str, str]]) -> str:
    """The select list that writes a mart (``_export_type``)."""
    out = []
    for name, dtype in columns:
        ident = quote_ident(name)
        out.append(f"timezone('UTC', {ident}) as {ident}" if _export_type(dtype) != dtype else ident)
    return ", ".join(out)


def _kv_metadata(spec: MartSpec, version_id: str) -> str:
    """``KV_METADATA {...}`` naming the mart, its dbt node and the version (strings only)."""
    pairs = {
        "mart": spec.name,
        "unique_id": spec.unique_id,
        "version": version_id,
        "format": str(FORMAT_VERSION),
    }
    body = ", ".join(f"{quote_literal(KV_PREFIX + k)}: {quote_literal(v)}" for k, v in pairs.items())
    return f"KV_METADATA {{{body}}}"


def _flatten_partitions(target: Path, key: str, prefix: str) -> None:
    """``<key>=<value>/data_N.parquet`` (DuckDB's partitioned COPY) → ``<prefix>_<value>[_N].parquet``.

    The value is DuckDB's own path-safe rendering of it; a partition DuckDB split into several files
    keeps them all, numbered."""
    for folder in sorted(p for p in target.iterdir() if p.is_dir()):
        name, sep, value = folder.name.partition("=")
        if not sep or name != key:
            raise PublishError(f"{target.name}: unexpected folder {folder.name!r} from the partitioned COPY")
        files = sorted(folder.glob("*.parquet"))
        for i, f in enumerate(files):
            suffix = f"_{i}" if len(files) > 1 else ""
            os.rename(f, target / f"{prefix}_{value}{suffix}.parquet")
        folder.rmdir()


def _write_mart(
    con: duckdb.DuckDBPyConnection,
    spec: MartSpec,
    relation: str,
    columns: list[tuple[str, str]],
    staging: Path,
    version_id: str,
    plan: carry.PartitionPlan | None = None,
    scheme: partition.Scheme | None = None,
) -> Path:
    """COPY one mart into the staging folder; return the file or folder written. With ``plan`` (a
    partitioned mart compared with the current version's) only the changed partitions are written and
    the current version's files of the others are linked in (publish/carry.py)."""
    query = f"select {_export_select(columns)} from {relation}"
    options = f"FORMAT parquet, COMPRESSION zstd, {_kv_metadata(spec, version_id)}"
    if spec.partition_by:
        scheme = scheme or partition.Scheme.of(spec, datetime.now(UTC))
        target = staging / spec.name
        if plan is None or plan.write:
            where = plan.where() if plan is not None else None
            where_sql = f" where {where}" if where else ""
            if spec.partition_grain:  # by a hidden key column, not written into the files
                key = scheme.bucket_key_sql(_export_type(dict(columns)[spec.partition_by]))
                con.execute(
                    f"copy (select {_export_select(columns)}, {key} as {quote_ident(partition.KEY_COLUMN)} "
                    f"from {relation}{where_sql}) to {quote_literal(str(target))} "
                    f"({options}, PARTITION_BY ({quote_ident(partition.KEY_COLUMN)}))"
                )
                folder_key = partition.KEY_COLUMN
            else:
                con.execute(
                    f"copy ({query}{where_sql}) to {quote_literal(str(target))} ({options}, "
                    f"PARTITION_BY ({quote_ident(spec.partition_by)}), WRITE_PARTITION_COLUMNS true)"
                )
                folder_key = spec.partition_by
            if target.is_dir():
                _flatten_partitions(target, folder_key, spec.partition_by)
        if plan is not None:
            try:
                plan.link_into(staging)
            except carry.CarryError as exc:
                raise PublishError(f"{spec.name}: {exc}") from exc
        if not any(target.glob("*.parquet")):  # an empty mart: keep one empty file so the schema ships
            target.mkdir(parents=True, exist_ok=True)
            con.execute(
                f"copy ({query} limit 0) to {quote_literal(str(target / 'empty.parquet'))} ({options})"
            )
        return target
    target = staging / f"{spec.name}.parquet"
    con.execute(f"copy ({query}) to {quote_literal(str(target))} ({options})")
    return target


def _mart_files(written: Path) -> list[Path]:
    return [written] if written.is_file() else sorted(written.glob("*.parquet"))


def _iso(value: object) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    return value.isoformat() if isinstance(value, date) else (None if value is None else str(value))


def _high_water_column(spec: MartSpec, names: list[str]) -> str | None:
    if spec.high_water_mark and spec.high_water_mark not in names:
        raise PublishError(
            f"{spec.unique_id}: publish_high_water_mark column {spec.high_water_mark!r} not in {names}"
        )
    return spec.high_water_mark


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_rows(con: duckdb.DuckDBPyConnection, files: list[Path]) -> dict[str, int]:
    """Rows per file from the Parquet footers (what a reader that trusts the metadata sees)."""
    if not files:
        return {}
    listing = checksums.parquet_list(files)
    return dict(con.execute(f"select file_name, num_rows from parquet_file_metadata({listing})").fetchall())


def _file_entry(f: Path, staging: Path, rows: int) -> dict[str, Any]:
    """A written file's manifest entry, the file made durable first."""
    _fsync(f)
    digest = checksums.sha256_file(f)
    carry.remember(f, digest)  # a later publish of this process links it without hashing it again
    return {
        "path": str(f.relative_to(staging)),
        "rows": int(rows),
        "bytes": f.stat().st_size,
        "sha256": digest,
    }


def _check_names(spec: MartSpec, read: list[tuple[str, str]], source: list[tuple[str, str]]) -> None:
    read_names, source_names = [n for n, _ in read], [n for n, _ in source]
    if read_names != source_names:
        raise PublishError(f"{spec.name}: columns read back {read_names} differ from {source_names}")


def _verify_whole(
    con: duckdb.DuckDBPyConnection,
    spec: MartSpec,
    relation: str,
    columns: list[tuple[str, str]],
    files: list[Path],
    staging: Path,
) -> tuple[int, str, Any, list[tuple[str, str]], list[dict[str, Any]]]:
    """An unpartitioned mart: the warehouse relation and the files read back (one pass each) hold the
    same rows (count and content checksum); also the files' footers. Returns rows, checksum, newest
    high-water value, the files' columns and their manifest entries."""
    listing = checksums.parquet_list(files)
    reader = f"read_parquet({listing}, hive_partitioning = false)"
    file_columns = _columns(con, reader)
    _check_names(spec, file_columns, columns)
    hwm = _high_water_column(spec, [n for n, _ in columns])
    hashed = partition.hash_types(con, file_columns, columns)
    src_rows, src_sum = con.execute(checksums.content_query(relation, hashed)).fetchone()
    newest = f"max(_r.{quote_ident(hwm)})" if hwm else "null"
    file_rows, file_sum, high = con.execute(
        f"select count(*), coalesce(sum(hash(_r)::hugeint), 0)::varchar, {newest} "
        f"from (select * from {reader}) as _r"
    ).fetchone()
    meta_rows = _file_rows(con, files)
    per_file_total = sum(meta_rows.values())
    if not (src_rows == file_rows == per_file_total):
        raise PublishError(
            f"{spec.name}: row count mismatch: warehouse {src_rows}, read back {file_rows}, "
            f"file metadata {per_file_total}"
        )
    if src_sum != file_sum:
        raise PublishError(f"{spec.name}: content checksum mismatch: warehouse {src_sum}, files {file_sum}")
    entries = [_file_entry(f, staging, meta_rows[str(f)]) for f in files]
    return int(src_rows), file_sum, high, file_columns, entries


def _verify_partitioned(
    con: duckdb.DuckDBPyConnection,
    spec: MartSpec,
    relation: str,
    columns: list[tuple[str, str]],
    files: list[Path],
    staging: Path,
    plan: carry.PartitionPlan | None,
    scheme: partition.Scheme,
) -> tuple[int, str, Any, list[tuple[str, str]], list[dict[str, Any]]]:
    """A partitioned mart, partition by partition: each partition key the publish wrote holds, in the
    files read back (one pass over them), exactly the warehouse's rows of that key (count and checksum,
    from one grouped scan of the relation, shared with the plan); each linked file is the current
    version's (sha256 checked when linked, publish/carry.py) whose recorded figures equal the warehouse's
    for its key; together the keys are exactly the warehouse's. The mart's checksum is the sum of the
    partitions' (the same ``hash(row)`` summed as the content checksum), its high-water value the newest of
    the warehouse's rows the files were just proven to hold. Linked files are not read again."""
    assert spec.partition_by is not None
    linked = {f["path"]: f for f in plan.link} if plan is not None else {}
    folder = f"{spec.name}/"  # a partitioned mart's files are <mart>/<file> in the version
    written = [f for f in files if folder + f.name not in linked]
    if plan is not None:
        file_columns = plan.file_columns
    else:
        reader = f"read_parquet({checksums.parquet_list(files)}, hive_partitioning = false)"
        file_columns = _columns(con, reader)
    _check_names(spec, file_columns, columns)
    if written and plan is not None:  # the new files have the types the linked ones were verified with
        reader = f"read_parquet({checksums.parquet_list(written)}, hive_partitioning = false)"
        got = _columns(con, reader)
        if got != file_columns:
            raise PublishError(
                f"{spec.name}: written files read back as {got}, the linked ones as {file_columns}"
            )
    _high_water_column(spec, [n for n, _ in columns])
    groups = (
        plan.groups
        if plan is not None
        else partition.warehouse_groups(con, relation, spec, scheme, columns, file_columns)
    )
    figures = partition.file_figures(con, written, scheme, file_columns) if written else {}
    meta_rows = _file_rows(con, written)
    column = spec.partition_by
    found: dict[str | None, list[int]] = {}  # key -> [rows, checksum] of its files (written and linked)
    entries: list[dict[str, Any]] = []
    for f in files:
        path = folder + f.name
        if path in linked:
            entry = dict(linked[path])
            key = entry["partition"].get(column)
            rows, total = entry["rows"], int(entry["partition_checksum"])
        else:
            figure = figures.get(str(f))
            rows = figure.rows if figure else 0
            if rows != meta_rows.get(str(f)):
                raise PublishError(
                    f"{spec.name}: row count mismatch: {path} read back {rows} rows, "
                    f"file metadata {meta_rows.get(str(f))}"
                )
            entry = _file_entry(f, staging, rows)
            if figure is None:  # the empty file of an empty mart
                entry["partition"] = {}
                entries.append(entry)
                continue
            if figure.keys > 1:
                raise PublishError(f"{path}: {figure.keys} values of partition key {column!r} in one file")
            key, total = figure.key, figure.checksum
            entry["partition"] = {column: key}
            entry["partition_checksum"] = str(total)
        sums = found.setdefault(key, [0, 0])
        sums[0] += rows
        sums[1] += total
        entries.append(entry)
    src_rows = sum(g.rows for g in groups.values())
    file_rows = sum(r for r, _ in found.values())
    if set(found) != set(groups) or any(found[k][0] != g.rows for k, g in groups.items()):
        raise PublishError(
            f"{spec.name}: row count mismatch: warehouse {src_rows} in {len(groups)} partition(s), "
            f"files {file_rows} in {len(found)}"
        )
    bad = sorted(str(k) for k, g in groups.items() if found[k][1] != g.checksum)
    if bad:
        raise PublishError(f"{spec.name}: content checksum mismatch in partition(s) {', '.join(bad[:5])}")
    highs = [g.high_water for g in groups.values() if g.high_water is not None]
    total = str(sum(g.checksum for g in groups.values()))
    return src_rows, total, max(highs) if highs else None, file_columns, entries


def _verify_mart(
    con: duckdb.DuckDBPyConnection,
    spec: MartSpec,
    relation: str,
    columns: list[tuple[str, str]],
    written: Path,
    staging: Path,
    plan: carry.PartitionPlan | None = None,
    scheme: partition.Scheme | None = None,
) -> dict[str, Any]:
    """Prove the mart's files hold the warehouse relation's rows; return the manifest entry."""
    files = _mart_files(written)
    if not files:
        raise PublishError(f"{spec.name}: COPY wrote no Parquet files into {written}")
    if spec.partition_by:
        scheme = scheme or partition.Scheme.of(spec, datetime.now(UTC))
        rows, total, high, file_columns, entries = _verify_partitioned(
            con, spec, relation, columns, files, staging, plan, scheme
        )
    else:
        rows, total, high, file_columns, entries = _verify_whole(con, spec, relation, columns, files, staging)
    versions.fsync_dir(written if written.is_dir() else written.parent)
    source_types = dict(columns)
    return {
        "unique_id": spec.unique_id,
        "relation": f"{spec.schema}.{spec.alias}",
        "description": spec.description,
        "rows": rows,
        "partition_by": spec.partition_by,
        **(scheme.manifest_fields() if scheme is not None else {}),
        "high_water_mark": (
            {"column": spec.high_water_mark, "value": _iso(high)} if spec.high_water_mark else None
        ),
        "schema": [
            {
                "name": name,
                "type": ftype,
                "warehouse_type": source_types[name],
                "description": spec.column_descriptions.get(name, ""),
            }
            for name, ftype in file_columns
        ],
        "content_checksum": {"algorithm": checksums.CONTENT_ALGORITHM, "value": total},
        "files": entries,
    }


def _manifest_text(manifest: dict[str, Any]) -> str:
    """The manifest as indented JSON (orjson: the stream writes one per batch, with a file entry per
    partition; the text is the same as ``json.dumps(..., indent=2, default=str)`` gives for it, but
    non-ASCII characters are written as UTF-8 rather than escaped)."""
    option = orjson.OPT_INDENT_2 | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
    return orjson.dumps(manifest, default=str, option=option).decode()


def source_loads(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Per raw schema: the committed dlt load ids (newest first, capped) behind this publish."""
    schemas = [
        r[0]
        for r in con.execute(
            "select distinct schema_name from duckdb_tables() where database_name = current_database() "
            "and table_name = '_dlt_loads' and schema_name like 'raw\\_%' escape '\\' order by 1"
        ).fetchall()
    ]
    out: dict[str, Any] = {}
    for schema in schemas:  # the newest ids and the count (the stream adds a load per batch: thousands)
        rows = con.execute(
            f"select load_id, inserted_at, count(*) over () from {quote_ident(schema)}._dlt_loads "
            f"where status = 0 order by load_id desc limit {MAX_LOAD_IDS}"
        ).fetchall()
        out[schema] = {
            "committed_loads": rows[0][2] if rows else 0,
            "latest_load_id": rows[0][0] if rows else None,
            "latest_inserted_at": rows[0][1].isoformat() if rows and rows[0][1] else None,
            "load_ids": [r[0] for r in rows[:MAX_LOAD_IDS]],
        }
    return out


def _apply_exports_mode(folder: Path, mode: int, recurse: bool = True) -> None:
    """Give the published files ``mode`` (``SHOP_EXPORTS_MODE``) and their folders the same with search
    where it allows reading. Why explicit: every entry point runs with an owner-only umask (the warehouse
    and run folder hold personal data), but the exports are meant to be shared. A file that has the mode
    already (one linked from the current version) is left alone."""
    dir_mode = mode | ((mode & 0o444) >> 2)
    os.chmod(folder, dir_mode)
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_symlink():
                continue
            if entry.is_dir():
                if recurse:
                    _apply_exports_mode(Path(entry.path), mode)
            elif entry.stat().st_mode & 0o7777 != mode:
                os.chmod(entry.path, mode)


def _utc_session(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """Casts between naive and zoned timestamps (the verification's) in UTC, the warehouse's convention,
    whatever the machine's zone. Per cursor (a session setting), so a connection handed in by the caller
    keeps its own zone. Without the ICU extension DuckDB has no time zones and casts in UTC already."""
    try:
        con.execute("set TimeZone = 'UTC'")
    except duckdb.Error as exc:
        log.debug("TimeZone not settable (%s): casts are UTC without ICU", exc)
    return con


def _build_attachments(
    attachments: Sequence[Attachment], staging: Path, manifest: dict[str, Any]
) -> dict[str, Any]:
    """Build each attachment into ``staging``; their manifest entries (path, bytes, sha256, detail)."""
    out: dict[str, Any] = {}
    for attachment in attachments:
        t0 = time.monotonic()
        try:
            path, detail = attachment.build(staging, manifest)
        except PublishError:
            raise
        except Exception as exc:
            raise PublishError(f"building the {attachment.name} failed: {type(exc).__name__}: {exc}") from exc
        path = path.resolve()
        if staging.resolve() not in path.parents or not path.is_file():
            raise PublishError(f"the {attachment.name} must be a file inside the version folder, got {path}")
        _fsync(path)
        out[attachment.name] = {
            "path": str(path.relative_to(staging.resolve())),
            "bytes": path.stat().st_size,
            "sha256": checksums.sha256_file(path),
            "seconds": round(time.monotonic() - t0, 3),
            **detail,
        }
        log.info(
            "built the %s: %s, %.1f MiB, %.2fs",
            attachment.name,
            out[attachment.name]["path"],
            out[attachment.name]["bytes"] / 2**20,
            time.monotonic() - t0,
        )
    return out


def _unchanged(prev: carry.Previous, specs: list[MartSpec], seconds: float) -> PublishResult:
    """The result of a publish that found every mart equal to the current version's: that version."""
    entries = prev.manifest["marts"]
    marts = [
        MartResult(
            s.name,
            entries[s.name]["rows"],
            len(entries[s.name]["files"]),
            sum(f["bytes"] for f in entries[s.name]["files"]),
            0.0,
            carried=True,
        )
        for s in specs
    ]
    log.info("every mart equals version %s: it stays current, no new version (%.2fs)", prev.version, seconds)
    return PublishResult(
        prev.version,
        prev.folder,
        marts,
        seconds,
        pii_key=prev.manifest.get("pii_key") or {},
        attachments=prev.manifest.get("attachments") or {},
        unchanged=True,
    )


@dataclass
class _Job:
    """One mart through a publish: where it lives, and what the write step did with it."""

    spec: MartSpec
    relation: str
    columns: list[tuple[str, str]]  # the warehouse relation's (name, type)
    scheme: partition.Scheme | None = None  # how a partitioned mart is split into files
    plan: carry.PartitionPlan | None = None  # a partitioned mart compared with the current version's
    carry: dict[str, Any] | None = None  # the current version's entry: unchanged, its files carried
    path: Path | None = None  # the file or folder written into staging
    entry: dict[str, Any] | None = None  # its verified manifest entry
    seconds: float = 0.0


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
    attachments: Sequence[Attachment] = (),
    reuse: bool = False,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> PublishResult:
    """Export ``specs`` from ``warehouse`` as a new version under ``exports`` and make it current.

    ``reuse``: a mart whose content equals the current version's keeps its files (hard links,
    publish/carry.py) instead of being written again; when every mart does (and nothing amends the
    manifest) no new version is made and the result is the current one, ``unchanged``.

    ``dbt_invocation`` ({"invocation_id", ...}) is recorded in the manifest. ``after_write`` is called
    with the staging folder after the COPYs and before verification (fault-injection hook for tests).
    The manifest records the PII key's fingerprint; a key other than the current version's raises
    ``pii_key.PiiKeyError`` before anything is written, unless ``rotate_pii_key`` (see core/pii_key.py).
    Raises ``PublishError`` (current version untouched, staging removed) when anything does not check out.
    ``amend_manifest(staging, manifest)`` may add files and entries before the manifest is written
    (``--allow-partial`` carries stale marts from the current version, publish/partial.py). Then
    ``attachments`` are built into the staging folder (the warehouse connection closed, every mart's
    files in place) and listed in the manifest; one that fails fails the publish.

    ``connection``: the caller's open connection to ``warehouse`` (the stream's batch connection, which
    just wrote the marts), read through cursors of it instead of opening the file again read-only (an
    open reads the catalog); the caller holds the lock and writes nothing meanwhile.
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

    now = datetime.now(UTC)  # one moment for the whole publish (a rollup's cut, publish/partition.py)
    version_id = versions.new_version_id()
    staging = versions.versions_dir(exports) / (version_id + versions.PARTIAL_SUFFIX)
    final = versions.versions_dir(exports) / version_id
    staging.mkdir()
    results: list[MartResult] = []
    prev = carry.previous(exports, FORMAT_VERSION, key_record) if reuse and not rotate_pii_key else None
    try:
        limit = settings.publish_memory_limit()  # bounded memory whatever the marts' size
        config = {"memory_limit": limit} if limit else {}
        opened = (
            connection.cursor()
            if connection is not None
            else duckdb.connect(str(warehouse), read_only=True, config=config)
        )
        with opened as con:
            _utc_session(con)
            workers = _workers(con, len(specs))
            catalog = _Catalog.read(con)
            with ThreadPoolExecutor(workers, thread_name_prefix="publish") as pool:

                def write(spec: MartSpec) -> _Job:
                    """The mart written into staging, or the entry to carry (unchanged)."""
                    t0 = time.monotonic()
                    cur = _utc_session(con.cursor())  # one per thread: a connection runs one query at a time
                    try:
                        relation = catalog.relation_sql(spec)
                        columns = _columns(cur, relation)
                        if spec.partition_by:
                            try:
                                partition.check(spec, columns)
                            except partition.PartitionConfigError as exc:
                                raise PublishError(str(exc)) from exc
                        job = _Job(spec, relation, columns)
                        if spec.partition_by:  # one split for the plan, the write and the check
                            job.scheme = partition.Scheme.of(spec, now)
                        if prev is not None and job.scheme is not None:
                            job.plan = carry.partition_plan(cur, spec, job.scheme, relation, columns, prev)
                            if job.plan is not None and job.plan.unchanged:
                                job.carry = prev.manifest["marts"][spec.name]
                        if prev is not None and job.plan is None:  # unpartitioned, or not comparable
                            job.carry = carry.unchanged(cur, spec, relation, columns, prev)
                        if job.carry is None:
                            job.path = _write_mart(
                                cur, spec, relation, columns, staging, version_id, job.plan, job.scheme
                            )
                            if after_write is None:  # verified at once: no thread waits for the largest COPY
                                job.entry = _verify_mart(
                                    cur, spec, relation, columns, job.path, staging, job.plan, job.scheme
                                )
                        job.seconds = time.monotonic() - t0
                        return job
                    finally:
                        cur.close()

                done = list(pool.map(write, catalog.largest_first(specs)))
                same = {j.spec.name: j for j in done if j.carry is not None}
                if prev is not None and len(same) == len(specs) and amend_manifest is None:
                    shutil.rmtree(staging, ignore_errors=True)
                    return _unchanged(prev, specs, time.monotonic() - started)
                try:
                    carried = {
                        name: (carry.carry(staging, prev, j.spec, j.carry), j.seconds)  # type: ignore[arg-type]
                        for name, j in same.items()
                    }
                except carry.CarryError as exc:
                    raise PublishError(str(exc)) from exc
                written = [j for j in done if j.spec.name not in same]
                plans = {j.spec.name: j.plan for j in written if j.plan is not None}
                if after_write is not None:
                    after_write(staging)

                def verify(job: _Job) -> tuple[dict[str, Any], float]:
                    t0 = time.monotonic()
                    cur = _utc_session(con.cursor())
                    try:
                        assert job.path is not None
                        entry = _verify_mart(
                            cur, job.spec, job.relation, job.columns, job.path, staging, job.plan, job.scheme
                        )
                        return entry, job.seconds + time.monotonic() - t0
                    finally:
                        cur.close()

                verified = {j.spec.name: (j.entry, j.seconds) for j in written if j.entry is not None}
                rest = [j for j in written if j.entry is None]  # written before the after_write hook
                verified.update(zip([j.spec.name for j in rest], pool.map(verify, rest), strict=True))
                verified.update(carried)
            marts: dict[str, Any] = {}
            for spec in specs:  # manifest and log in the dbt manifest's order, whatever order the threads ran
                entry, took = verified[spec.name]
                marts[spec.name] = entry
                size = sum(f["bytes"] for f in entry["files"])
                kept = spec.name in carried
                plan = plans.get(spec.name)
                linked = plan.mark(entry) if plan is not None else 0
                results.append(
                    MartResult(spec.name, entry["rows"], len(entry["files"]), size, took, kept, linked)
                )
                log.info(
                    "published %s: %d rows, %d file(s), %.1f MiB, %.2fs%s",
                    spec.name,
                    entry["rows"],
                    len(entry["files"]),
                    size / 2**20,
                    took,
                    f" (unchanged: carried from version {prev.version})"
                    if kept and prev
                    else (
                        f" ({len(plan.link)} unchanged partition file(s) linked from {plan.prev.version})"
                        if plan
                        else ""
                    ),
                )
            loads = source_loads(con)
            duckdb_version = con.execute("select version()").fetchone()[0]
        manifest = {
            "format_version": FORMAT_VERSION,
            "version": version_id,
            "created_at": datetime.now(UTC).isoformat(),
            "dbt": dbt_invocation or {},
            "sources": loads,
            "publisher": {
                "duckdb": duckdb_version,
                "warehouse": warehouse.name,
                "git_revision": ops_log.git_revision(),
            },
            "pii_key": key_record,
            "marts": marts,
        }
        if amend_manifest is not None:
            amend_manifest(staging, manifest)
        attached = _build_attachments(attachments, staging, manifest)  # last: it sees every mart's files
        if attached:
            manifest["attachments"] = attached
        text = _manifest_text(manifest)
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
    return PublishResult(version_id, final, results, seconds, pruned, key_record, attached)
