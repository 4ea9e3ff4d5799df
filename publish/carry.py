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
