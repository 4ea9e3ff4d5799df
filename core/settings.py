"""Where things live. One place resolves the project's paths so that every part (launcher,
loaders, dbt wrapper, publisher, tests) agrees on them and honours the same environment overrides.

Relative values are taken relative to the repository root, not the current directory, so a
command started from a subfolder (or by pytest with another cwd) still finds the same warehouse.
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent


def repo_root() -> Path:
    """The repository root (the folder holding Makefile and dbt_project.yml)."""
    return _REPO_ROOT


def _path_from_env(var: str, default: str) -> Path:
    """Resolve ``$var`` (or ``default``) against the repo root unless it is absolute."""
    raw = os.environ.get(var) or default
    path = Path(raw).expanduser()
    return path if path.is_absolute() else _REPO_ROOT / path


def warehouse_path() -> Path:
    """The DuckDB warehouse file (``SHOP_WAREHOUSE``, default ``warehouse/shop.duckdb``)."""
    return _path_from_env("SHOP_WAREHOUSE", "warehouse/shop.duckdb")


def exports_dir() -> Path:
    """The Parquet publishing root (``SHOP_EXPORTS_DIR``, default ``exports``)."""
    return _path_from_env("SHOP_EXPORTS_DIR", "exports")


def run_dir() -> Path:
    """Runtime state: pids, logs, ``fleet.env``, ``pii.key`` (``SHOP_RUN_DIR``, default ``run``)."""
    return _path_from_env("SHOP_RUN_DIR", "run")


def dlt_dir() -> Path:
    """The loaders' dlt working folder: pipeline state, schemas, pending load packages (``SHOP_DLT_DIR``,
    default ``<run dir>/dlt``). One per warehouse: a state that belongs to another warehouse is detected
    and dropped (extract/statesync.py), but each switch then costs a restore from the warehouse."""
    return _path_from_env("SHOP_DLT_DIR", str(run_dir() / "dlt"))


def publish_memory_limit() -> str | None:
    """DuckDB ``memory_limit`` of the publisher's read-only connection (``SHOP_PUBLISH_MEMORY_LIMIT``,
    default ``256MB``; ``none`` = DuckDB's own default of 80 % of RAM).

    Why: DuckDB keeps the blocks it reads in its buffer pool up to that limit, so without one the
    publisher's peak memory followed the warehouse size. 256MB keeps it flat for a small cost in time;
    half of it cost far more time (the benchmark's publish group measures memory and time).
    """
    raw = os.environ.get("SHOP_PUBLISH_MEMORY_LIMIT", "256MB").strip()
    return None if raw.lower() in ("", "0", "none") else raw


def services_data_dir() -> Path:
    """The services' SQLite files (``SHOP_SERVICES_DATA``, default ``data/services``)."""
    return _path_from_env("SHOP_SERVICES_DATA", "data/services")


def private_paths() -> list[Path]:
    """What holds personal data or secrets, owner-only (services/common/private.py): the warehouse,
    its WAL and spill folder, and the run folder (fleet credentials, PII key, dlt state, logs)."""
    db = warehouse_path()
    return [db, db.with_name(db.name + ".wal"), db.with_name(db.name + ".tmp"), run_dir()]


def exports_mode() -> int:
    """Mode of published files (``SHOP_EXPORTS_MODE``, octal, default ``0644``: the exports hold no
    personal data); folders get it with search (x) wherever it allows reading."""
    raw = os.environ.get("SHOP_EXPORTS_MODE", "").strip() or "0644"
    try:
        mode = int(raw, 8)
    except ValueError:
        raise ValueError(f"SHOP_EXPORTS_MODE={raw!r} is not an octal file mode (e.g. 0644 or 0640)") from None
    if not 0 <= mode <= 0o777 or not mode & 0o600 == 0o600:
        raise ValueError(f"SHOP_EXPORTS_MODE={raw!r}: the owner needs read and write (e.g. 0644 or 0640)")
    return mode


def report_enabled() -> bool:
    """Whether a publish builds the report into its version (``SHOP_REPORT``, default on; ``off``/``0``/
    ``false`` publishes the Parquet and manifest alone, e.g. where plotly is not installed)."""
    return os.environ.get("SHOP_REPORT", "on").strip().lower() not in ("0", "off", "false", "no")
