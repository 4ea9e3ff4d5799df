"""Publish only what changed: a mart whose content equals the current version's keeps its files.

Why: an incremental run usually changes a few marts, yet every publish wrote (and read back) all of
them. The publisher already proves each version whole with a content checksum per mart (elt/checksums.py:
the sum of every row's hash, columns cast to their Parquet read-back types). Computing the same checksum
on the warehouse relation costs one scan and no write; when it equals the current version's, and the
mart's shape (node, columns, warehouse types, partition and high-water columns) and the PII key are the
same, the files of the current version are exactly what a new COPY would hold. They are then hard-linked
into the new version (copied where a link is impossible, e.g. another filesystem) and checked against
their recorded sha256, so a damaged file is never carried; the manifest entry is the current version's
with ``carried_over`` naming the version it came from and the version whose publish wrote the files
(their Parquet key-value metadata names that one too).

A version with some marts carried is complete and verifies like any other (``elt export --verify``). When
every mart is unchanged the publish makes no new version at all (``publish(..., reuse=True)``).
Atomicity is untouched: links are made inside the staging folder, which a failure removes; the current
version's files are only ever read (a hard link shares the file, and nothing writes published files).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from core import checksums
from publish import versions
from transform.dbt_artifacts import MartSpec

log = logging.getLogger("elt.publish")


class CarryError(RuntimeError):
    """A file to carry no longer matches its manifest (the publish fails; nothing is switched)."""


@dataclass(frozen=True)
class Previous:
    """The current version, when its marts may be carried into the next one."""

    version: str
    folder: Path
    manifest: dict[str, Any]


def previous(exports: Path, format_version: int, key_record: dict[str, Any]) -> Previous | None:
    """The current version if its files may be carried: same format, same PII key fingerprint."""
    folder = versions.resolve_current(exports)
    if folder is None:
        return None
    try:
        manifest = versions.read_manifest(folder)
    except (OSError, ValueError):
        return None
    if manifest.get("format_version") != format_version:
        return None
    if (manifest.get("pii_key") or {}).get("fingerprint") != key_record.get("fingerprint"):
        return None
    return Previous(str(manifest.get("version") or folder.name), folder, manifest)


def unchanged(
    con: duckdb.DuckDBPyConnection, spec: MartSpec, relation: str, prev: Previous
) -> dict[str, Any] | None:
    """The current version's manifest entry of ``spec`` when the warehouse relation holds the same
    content in the same shape (then its files can be carried); None when it must be written."""
    entry = (prev.manifest.get("marts") or {}).get(spec.name)
    if not entry or entry.get("stale") or entry.get("unique_id") != spec.unique_id:
        return None
    if entry.get("partition_by") != spec.partition_by:
        return None
    if (entry.get("high_water_mark") or {}).get("column") != spec.high_water_mark:
        return None
    schema = entry.get("schema") or []
    columns = [(r[0], r[1]) for r in con.execute(f"describe select * from {relation}").fetchall()]
    if [(c["name"], c["warehouse_type"]) for c in schema] != columns:
        return None
    file_columns = [(c["name"], c["type"]) for c in schema]
    rows, total = con.execute(checksums.content_query(relation, file_columns)).fetchone()
    if rows != entry.get("rows") or total != (entry.get("content_checksum") or {}).get("value"):
        return None
    return entry


def link(src: Path, dst: Path) -> None:
    """``dst`` shares ``src``'s bytes: a hard link, else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def carry(staging: Path, prev: Previous, spec: MartSpec, entry: dict[str, Any]) -> dict[str, Any]:
    """Link the mart's files of ``prev`` into ``staging``, check each against its recorded sha256, and
    return the manifest entry for the new version (descriptions from today's dbt docs)."""
    for f in entry["files"]:
        src, dst = prev.folder / f["path"], staging / f["path"]
        link(src, dst)
        if checksums.sha256_file(dst) != f["sha256"]:
            raise CarryError(
                f"{spec.name}: {f['path']} of version {prev.version} no longer matches its manifest; "
                "not carrying a damaged file (publish with --full-build, or repair the version)"
            )
    for d in {(staging / f["path"]).parent for f in entry["files"]}:
        versions.fsync_dir(d)
    written_in = (entry.get("carried_over") or {}).get("written_in_version") or prev.version
    schema = [{**c, "description": spec.column_descriptions.get(c["name"], "")} for c in entry["schema"]]
    return {
        **entry,
        "relation": f"{spec.schema}.{spec.alias}",
        "description": spec.description,
        "schema": schema,
        "carried_over": {"from_version": prev.version, "written_in_version": written_in},
    }


@dataclass(frozen=True)
class PartitionPlan:
    """A partitioned mart whose content changed in some partitions only: write ``write`` (the values of
    the partition column, as text of its Parquet type), link the current version's files of the others.

    Compared per partition with ``partition_checksum`` (sum of ``hash(row(...))`` over the rows, columns
    cast to their Parquet types), which the publisher records for every file of a partitioned mart."""

    prev: Previous
    column_sql: str  # the partition column cast to its Parquet type, as text: what ``write`` holds
    write: list[str]
    link: list[dict[str, Any]]  # file entries of the current version to link

    def where(self) -> str:
        values = ", ".join(checksums.quote_literal(v) for v in self.write)
        return f"{self.column_sql} in ({values})" if self.write else "false"

    def mark(self, entry: dict[str, Any]) -> int:
        """Note in the new manifest entry which files were linked (and the version that wrote each);
        returns their bytes."""
        linked = {f["path"]: f for f in self.link}
        for f in entry["files"]:
            if f["path"] in linked:
                f["written_in_version"] = linked[f["path"]].get("written_in_version") or self.prev.version
        entry["partitions_carried"] = {"from_version": self.prev.version, "files": len(linked)}
        return sum(f["bytes"] for f in entry["files"] if f["path"] in linked)

    def link_into(self, staging: Path) -> None:
        for f in self.link:
            src, dst = self.prev.folder / f["path"], staging / f["path"]
            link(src, dst)
            if checksums.sha256_file(dst) != f["sha256"]:
                raise CarryError(
                    f"{f['path']} of version {self.prev.version} no longer matches its manifest; not "
                    "carrying a damaged file (publish with --full-build, or repair the version)"
                )


def row_hash(columns: list[tuple[str, str]]) -> str:
    """The per-row hash behind ``partition_checksum``: the same expression on warehouse and file rows."""
    return "hash(row(" + ", ".join(f"cast({checksums.quote_ident(n)} as {t})" for n, t in columns) + "))"


def partition_plan(
    con: duckdb.DuckDBPyConnection, spec: MartSpec, relation: str, prev: Previous
) -> PartitionPlan | None:
    """For a partitioned mart of the same shape whose content changed: which partitions to write and
    which files to link; None when the whole mart is to be written (another shape, an older manifest
    without per-file checksums, or no partition unchanged)."""
    entry = (prev.manifest.get("marts") or {}).get(spec.name)
    if not spec.partition_by or not entry or entry.get("stale") or entry.get("unique_id") != spec.unique_id:
        return None
    if entry.get("partition_by") != spec.partition_by:
        return None
    schema = entry.get("schema") or []
    columns = [(r[0], r[1]) for r in con.execute(f"describe select * from {relation}").fetchall()]
    if [(c["name"], c["warehouse_type"]) for c in schema] != columns:
        return None
    files = entry.get("files") or []
    if not files or any("partition_checksum" not in f or not f.get("partition") for f in files):
        return None
    file_columns = [(c["name"], c["type"]) for c in schema]
    ftype = dict(file_columns)[spec.partition_by]
    column_sql = f"cast(cast({checksums.quote_ident(spec.partition_by)} as {ftype}) as varchar)"
    now = {
        value: (rows, int(total))
        for value, rows, total in con.execute(
            f"select {column_sql}, count(*), coalesce(sum({row_hash(file_columns)}::hugeint), 0)::varchar "
            f"from {relation} group by 1"
        ).fetchall()
    }
    before: dict[str | None, list[dict[str, Any]]] = {}
    for f in files:
        before.setdefault(f["partition"].get(spec.partition_by), []).append(f)
    same = {
        value
        for value, group in before.items()
        if value in now
        and now[value] == (sum(f["rows"] for f in group), sum(int(f["partition_checksum"]) for f in group))
    }
    if not same:
        return None
    write = sorted(v for v in now if v not in same and v is not None)
    if any(v is None for v in now if v not in same):  # a null partition value cannot be selected by `in`
        return None
    return PartitionPlan(prev, column_sql, write, [f for v in sorted(same) for f in before[v]])
