"""The one reader of ``KEY=VALUE`` env files the pipeline has: the launcher's ``run/fleet.env`` (the
fleet's base URLs and credentials) and any file in the same format.

Why one: the loaders (base URLs and credentials, extract/config.py), the scrubber (the values to mask,
core/secrets.py) and the flow (the fleet's base URLs, elt/fleet.py) each read that file, and copies
that differ in how they strip quotes would mask one spelling and send another. The embedded services
keep their own reader (services/common/settings.py): they import nothing of the pipeline.
"""

from __future__ import annotations

from pathlib import Path

from core import settings


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of ``path`` (blank lines and ``#`` comments skipped, whitespace and one layer
    of surrounding quotes stripped from values); ``{}`` when the file cannot be read."""
    values: dict[str, str] = {}
    try:
        text = path.read_text()
    except OSError:
        return values
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name and not name.startswith("#"):
            values[name.strip()] = value.strip().strip("'\"")
    return values


def fleet_env_path() -> Path:
    """The launcher's env file of this run folder (``<run dir>/fleet.env``)."""
    return settings.run_dir() / "fleet.env"


def fleet_env() -> dict[str, str]:
    """The variables of ``<run dir>/fleet.env``, ``{}`` when there is no fleet."""
    return read_env_file(fleet_env_path())
