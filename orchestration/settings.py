"""The orchestrator's knobs, all from the environment (configuration over code), and its instance folder.

Why ``DAGSTER_HOME`` under the run folder: it holds the run history, event logs and captured step output
(which include the loaders' and dbt's log lines), so it belongs with the other private runtime state
(``run/`` is git-ignored and owner-only). Telemetry is switched off in the instance's ``dagster.yaml``,
written once and kept when the operator edits it.
"""

from __future__ import annotations

import os
from pathlib import Path

from core import file_modes, settings

DEFAULT_CRON = "0 3 * * *"  # the batch flow once a night
DEFAULT_FRESHNESS_CRON = "30 * * * *"  # dbt source freshness every hour
DEFAULT_PORT = 3000
DAGSTER_YAML = """\
# Written by python -m orchestration (orchestration/settings.py); edit freely, it is not overwritten.
telemetry:
  enabled: false
"""


def dagster_home() -> Path:
    """The Dagster instance folder: ``DAGSTER_HOME`` when set, else ``<run dir>/dagster``."""
    raw = os.environ.get("DAGSTER_HOME")
    return Path(raw).expanduser().resolve() if raw else settings.run_dir() / "dagster"


def prepare_home() -> Path:
    """Create the instance folder (owner-only) with a ``dagster.yaml`` that turns telemetry off, and
    point ``DAGSTER_HOME`` at it for this process and its children."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, file_modes.DIR_MODE)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def batch_cron() -> str:
    """When the batch flow runs (``SHOP_ORCHESTRATE_CRON``, a cron expression)."""
    return os.environ.get("SHOP_ORCHESTRATE_CRON") or DEFAULT_CRON


def freshness_cron() -> str:
    """When dbt source freshness is checked (``SHOP_FRESHNESS_CRON``)."""
    return os.environ.get("SHOP_FRESHNESS_CRON") or DEFAULT_FRESHNESS_CRON


def schedule_timezone() -> str:
    """The time zone of both crons (``SHOP_ORCHESTRATE_TIMEZONE``, default UTC)."""
    return os.environ.get("SHOP_ORCHESTRATE_TIMEZONE") or "UTC"


def schedules_running() -> bool:
    """Whether the schedules start switched on (``SHOP_ORCHESTRATE_SCHEDULES=on``). Off by default so
    that opening the UI on a laptop never starts loads by itself; switch them on in the UI or here."""
    return (os.environ.get("SHOP_ORCHESTRATE_SCHEDULES") or "off").strip().lower() in ("on", "1", "true")


def ui_port() -> int:
    """The UI's port on 127.0.0.1 (``SHOP_DAGSTER_PORT``, default 3000)."""
    raw = os.environ.get("SHOP_DAGSTER_PORT") or str(DEFAULT_PORT)
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"SHOP_DAGSTER_PORT={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ValueError(f"SHOP_DAGSTER_PORT={raw!r} is not a port number (1-65535)")
    return port
