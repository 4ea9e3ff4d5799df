"""Check a published version against its own manifest, the way a consumer would.

Used by ``python -m elt export --verify`` and by the tests' concurrent reader: every listed file must
exist with the recorded sha256 and row count, no unlisted Parquet file may sit in a mart's folder,
per mart the rows (and content checksum) read from the files must match the manifest, and every
attachment (the report) must exist with its recorded sha256.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from core import checksums
from publish import versions


def verify_version(version_dir: Path, *, content: bool = True) -> list[str]:
    """Problems found in ``version_dir`` (empty list = whole and consistent)."""
    version_dir = version_dir.resolve()  # `exports/current` -> its real folder, read from there only
    problems: list[str] = []
    try:
        manifest = versions.read_manifest(version_dir)
    except (OSError, ValueError) as exc:
        return [f"cannot read manifest: {exc}"]
    if manifest.get("version") != version_dir.name:
        problems.append(f"manifest version {manifest.get('version')!r} != folder {version_dir.name!r}")
    listed: set[Path] = set()
    with duckdb.connect() as con:
        for name, mart in manifest.get("marts", {}).items():
            files = [version_dir / f["path"] for f in mart["files"]]
            listed.update(files)
            for f, entry in zip(files, mart["files"], strict=True):
                if not f.is_file():
                    problems.append(f"{name}: missing file {entry['path']}")
                elif checksums.sha256_file(f) != entry["sha256"]:
                    problems.append(f"{name}: sha256 mismatch for {entry['path']}")
            if problems:
                continue
            if content:
                reader = f"read_parquet({checksums.parquet_list(files)}, hive_partitioning = false)"
                rows, total = con.execute(checksums.content_query(reader)).fetchone()
                if rows != mart["rows"] or sum(f["rows"] for f in mart["files"]) != rows:
                    problems.append(f"{name}: {rows} rows in files, manifest says {mart['rows']}")
                if total != mart["content_checksum"]["value"]:
                    problems.append(f"{name}: content checksum mismatch")
    for name, attached in manifest.get("attachments", {}).items():
        path = version_dir / attached["path"]
        if not path.is_file():
            problems.append(f"{name}: missing file {attached['path']}")
        elif checksums.sha256_file(path) != attached["sha256"]:
            problems.append(f"{name}: sha256 mismatch for {attached['path']}")
    on_disk = {p for p in version_dir.rglob("*.parquet")}
    for extra in sorted(on_disk - listed):
        problems.append(f"unlisted file {extra.relative_to(version_dir)}")
    return problems
