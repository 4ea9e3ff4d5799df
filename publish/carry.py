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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from core import checksums
from publish import partition, versions
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
    con: duckdb.DuckDBPyConnection,
    spec: MartSpec,
    relation: str,
    columns: list[tuple[str, str]],
    prev: Previous,
) -> dict[str, Any] | None:
    """The current version's manifest entry of ``spec`` when the warehouse relation holds the same
    content in the same shape (then its files can be carried); None when it must be written."""
    entry = (prev.manifest.get("marts") or {}).get(spec.name)
    if not entry or entry.get("stale") or entry.get("unique_id") != spec.unique_id:
        return None
    if entry.get("partition_by") != spec.partition_by or not _same_scheme(entry, spec):
        return None
    if (entry.get("high_water_mark") or {}).get("column") != spec.high_water_mark:
        return None
    schema = entry.get("schema") or []
    if [(c["name"], c["warehouse_type"]) for c in schema] != columns:
        return None
    file_columns = [(c["name"], c["type"]) for c in schema]
    hashed = partition.hash_types(con, file_columns, columns)
    rows, total = con.execute(checksums.content_query(relation, hashed)).fetchone()
    if rows != entry.get("rows") or total != (entry.get("content_checksum") or {}).get("value"):
        return None
    return entry


# (device, inode, size, mtime) of files whose sha256 this process computed, and that sha256: a file the
# stream links every batch (its unchanged partitions) is hashed about once per process, not every batch.
_HASHED: dict[tuple[int, int, int, int], str] = {}
_HASHED_MAX = 200_000
# A file modified less than this long before it was hashed is not remembered: a write within the file
# system's timestamp granularity after the hash could leave the time unchanged (git's "racily clean").
_SETTLED_NS = 1_000_000_000


def _stat_key(path: str | Path) -> tuple[tuple[int, int, int, int], int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns), st.st_mtime_ns


def remember(path: str | Path, sha256: str) -> None:
    """Note the sha256 this process just computed for ``path`` (a file it wrote or checked)."""
    key, mtime = _stat_key(path)
    if time.time_ns() - mtime < _SETTLED_NS:
        return
    if len(_HASHED) >= _HASHED_MAX:
        _HASHED.clear()
    _HASHED[key] = sha256


def matches(path: str | Path, sha256: str) -> bool:
    """Whether ``path`` has the recorded ``sha256``. A file this process hashed before and that is the
    same file since (same inode, size and modification time: a hard link shares all four, any write
    changes the time) is not read again; anything else is hashed."""
    if _HASHED.get(_stat_key(path)[0]) == sha256:
        return True
    digest = checksums.sha256_file(path)
    if digest == sha256:
        remember(path, digest)
    return digest == sha256


def _same_scheme(entry: dict[str, Any], spec: MartSpec) -> bool:
    """The manifest entry was split into files as ``spec`` says (grain and rollup)."""
    rollup = spec.partition_rollup if spec.partition_grain else None
    return entry.get("partition_grain") == spec.partition_grain and entry.get("partition_rollup") == rollup


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
        if not matches(dst, f["sha256"]):
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
    """A partitioned mart of the same shape as the current version's: write the partition keys in
    ``write``, link the current version's files of the others (``link``).

    Compared per partition key with ``partition_checksum`` (the rows' hashes summed, columns cast to their
    Parquet types), which the publisher records for every file of a partitioned mart. ``groups`` are the
    warehouse's figures per key, from the one scan that made the plan: the publish verifies the files it
    writes against them and takes the linked ones' from the manifest they were verified into."""

    prev: Previous
    scheme: partition.Scheme
    write: list[str]  # partition keys (publish/partition.py)
    link: list[dict[str, Any]]  # file entries of the current version to link
    groups: dict[str | None, partition.Group]
    file_columns: list[tuple[str, str]]  # (name, Parquet type) of the current version's files
    prev_files: int  # files of the mart in the current version

    @property
    def unchanged(self) -> bool:
        """Every partition equals the current version's and none was added or removed: carry the mart."""
        return not self.write and len(self.link) == self.prev_files

    def where(self) -> str | None:
        """The COPY's filter: the keys to write (None: write every row, nothing is linked)."""
        if not self.link:
            return None
        return self.scheme.select_keys_sql(dict(self.file_columns)[self.scheme.column], self.write)

    def mark(self, entry: dict[str, Any]) -> int:
        """Note in the new manifest entry which files were linked (and the version that wrote each);
        returns their bytes."""
        linked = {f["path"]: f for f in self.link}
        if not linked:
            return 0
        for f in entry["files"]:
            if f["path"] in linked:
                f["written_in_version"] = linked[f["path"]].get("written_in_version") or self.prev.version
        entry["partitions_carried"] = {"from_version": self.prev.version, "files": len(linked)}
        return sum(f["bytes"] for f in entry["files"] if f["path"] in linked)

    def link_into(self, staging: Path) -> None:
        """Link the unchanged partitions' files, each checked against its recorded sha256."""
        src_root, dst_root, made = str(self.prev.folder), str(staging), set()
        for f in self.link:  # plain strings: a mart may have a file per day of its history
            src, dst = os.path.join(src_root, f["path"]), os.path.join(dst_root, f["path"])
            parent = os.path.dirname(dst)
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
            if not matches(dst, f["sha256"]):
                raise CarryError(
                    f"{f['path']} of version {self.prev.version} no longer matches its manifest; not "
                    "carrying a damaged file (publish with --full-build, or repair the version)"
                )


def partition_plan(
    con: duckdb.DuckDBPyConnection,
    spec: MartSpec,
    scheme: partition.Scheme,
    relation: str,
    columns: list[tuple[str, str]],
    prev: Previous,
) -> PartitionPlan | None:
    """For a partitioned mart of the same shape as the current version's (node, warehouse columns and
    types, partition column and grain, high-water column, per-file checksums recorded): which partitions
    to write and which files to link, from one scan of the relation. None when the whole mart is to be
    written without a comparison (another shape, an older manifest, a null key that changed)."""
    entry = (prev.manifest.get("marts") or {}).get(spec.name)
    if not spec.partition_by or not entry or entry.get("stale") or entry.get("unique_id") != spec.unique_id:
        return None
    if entry.get("partition_by") != spec.partition_by or not _same_scheme(entry, spec):
        return None
    if (entry.get("high_water_mark") or {}).get("column") != spec.high_water_mark:
        return None
    schema = entry.get("schema") or []
    if [(c["name"], c["warehouse_type"]) for c in schema] != columns:
        return None
    files = entry.get("files") or []
    if not files or any("partition_checksum" not in f or not f.get("partition") for f in files):
        return None
    file_columns = [(c["name"], c["type"]) for c in schema]
    groups = partition.warehouse_groups(con, relation, spec, scheme, columns, file_columns)
    before: dict[str | None, list[dict[str, Any]]] = {}
    for f in files:
        before.setdefault(f["partition"].get(spec.partition_by), []).append(f)
    same = {
        value
        for value, group in before.items()
        if value in groups
        and (groups[value].rows, groups[value].checksum)
        == (sum(f["rows"] for f in group), sum(int(f["partition_checksum"]) for f in group))
    }
    write = sorted(v for v in groups if v not in same and v is not None)
    if any(v is None for v in groups if v not in same):  # a null key cannot be selected by `in`
        return None
    linked = [f for v in sorted(same) for f in before[v]]
    return PartitionPlan(prev, scheme, write, linked, groups, file_columns, len(files))
