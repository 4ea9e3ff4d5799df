"""Owner-only files for what holds personal data or secrets (the services' SQLite files, the warehouse,
the run folder): 0600 files, 0700 folders.

Why a umask and not a mode per file: SQLite, DuckDB, dlt and dbt create their own files (WAL, -shm,
spill folders, load packages) with the process umask, so a restrictive umask in every entry point is
the one place that covers them all; the chmods below cover what existed before (an older checkout).
The services own this copy; the pipeline has its own (core/file_modes.py): neither imports the other.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

OWNER_ONLY_UMASK = 0o077
FILE_MODE = 0o600
DIR_MODE = 0o700


def owner_only() -> None:
    """Every file and folder this process (and its children) creates from now on is owner-only."""
    os.umask(OWNER_ONLY_UMASK)


def private_dir(path: Path) -> Path:
    """``path`` created if missing and made owner-only: only for folders that are the project's own."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


def tighten(paths: Iterable[Path]) -> None:
    """Existing files made 0600 and folders 0700 (recursively); missing paths and symlinks are left."""
    for path in paths:
        if path.is_symlink() or not path.exists():
            continue
        if path.is_dir():
            os.chmod(path, DIR_MODE)
            tighten(path.iterdir())
        else:
            os.chmod(path, FILE_MODE)
