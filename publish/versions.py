"""The ``exports/`` layout and its atomic pointer.

::

    exports/
      versions/<version_id>/manifest.json    one complete, verified publish per folder
      versions/<version_id>/<mart>.parquet   (or <mart>/<column>=<value>/data_0.parquet when partitioned)
      versions/<version_id>.partial/         a publish being written (never pointed at)
      current -> versions/<version_id>       symlink, switched with one rename
      CURRENT                                the same version id as text (for tools that ignore symlinks)

A consumer resolves ``current`` once (``resolve_current``) and reads everything from that folder, so
it sees one whole version even if a newer one is switched in meanwhile. Old versions are removed
only beyond a retention count, and the current one never.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.atomic_files import fsync_dir, write_atomic

MANIFEST = "manifest.json"
PARTIAL_SUFFIX = ".partial"
DEFAULT_KEEP = 3


def default_keep() -> int:
    """Old versions kept besides the current one: ``SHOP_EXPORTS_KEEP`` or 3."""
    return int(os.environ.get("SHOP_EXPORTS_KEEP") or DEFAULT_KEEP)


def versions_dir(exports: Path) -> Path:
    return exports / "versions"


def new_version_id(now: datetime | None = None) -> str:
    """A sortable, unique id: UTC time to the microsecond plus a few random hex digits."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{secrets.token_hex(3)}"


def current_version_id(exports: Path) -> str | None:
    """The version ``current`` points at, or None before the first publish."""
    link = exports / "current"
    try:
        target = os.readlink(link)
    except (FileNotFoundError, OSError):
        return None
    return Path(target).name


def resolve_current(exports: Path) -> Path | None:
    """The real folder of the current version (resolve once, then read only from it)."""
    version = current_version_id(exports)
    return versions_dir(exports) / version if version else None


def switch_current(exports: Path, version_id: str) -> None:
    """Point ``current`` (and ``CURRENT``) at ``version_id`` atomically.

    A new symlink is created beside the old one and renamed over it: rename(2) replaces the entry
    in one step, so a reader resolving ``current`` gets the old target or the new, never nothing.
    """
    target = versions_dir(exports) / version_id
    if not (target / MANIFEST).is_file():
        raise FileNotFoundError(f"refusing to point current at {target}: it has no {MANIFEST}")
    link = exports / "current"
    if link.exists() and not link.is_symlink():
        raise RuntimeError(f"{link} exists and is not a symlink; move it away before publishing")
    tmp = exports / f".current.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(Path("versions") / version_id, tmp)
    os.replace(tmp, link)
    write_atomic(exports / "CURRENT", version_id + "\n")
    fsync_dir(exports)


def list_versions(exports: Path) -> list[str]:
    """Complete versions (with a manifest), oldest first."""
    root = versions_dir(exports)
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and not p.name.endswith(PARTIAL_SUFFIX) and (p / MANIFEST).is_file()
    )


def remove_partials(exports: Path) -> list[str]:
    """Delete leftovers of publishes that died mid-write. Call only while holding the warehouse lock
    (no other publisher can be writing one)."""
    root = versions_dir(exports)
    removed: list[str] = []
    if not root.is_dir():
        return removed
    for p in root.iterdir():
        if p.is_dir() and (p.name.endswith(PARTIAL_SUFFIX) or not (p / MANIFEST).is_file()):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    return removed


def prune(exports: Path, keep: int = DEFAULT_KEEP) -> list[str]:
    """Delete all but the newest ``keep`` versions besides the current one; return what was removed."""
    if keep < 0:
        raise ValueError("keep must be >= 0")
    current = current_version_id(exports)
    others = [v for v in list_versions(exports) if v != current]
    doomed = others[: max(0, len(others) - keep)]
    for version in doomed:
        shutil.rmtree(versions_dir(exports) / version, ignore_errors=True)
    return doomed


def read_manifest(version_dir: Path) -> dict[str, Any]:
    return json.loads((version_dir / MANIFEST).read_text())
