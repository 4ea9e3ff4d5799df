"""Owner-only files for what the pipeline writes that holds personal data or secrets (the warehouse, its
WAL and spill folder, the run folder): 0600 files, 0700 folders.

Why a umask and not a mode per file: DuckDB, dlt and dbt create their own files (WAL, spill folders,
load packages, logs) with the process umask, so a restrictive umask in every entry point is the one place
that covers them all; ``tighten`` covers what existed before (an older checkout). The embedded services
keep their own copy (services/common/private.py): the source systems and the pipeline import nothing of
each other.
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
