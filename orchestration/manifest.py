"""The dbt manifest the code location is built from, parsed when the project changed.

``@dbt_assets`` needs ``manifest.json`` when the definitions load, and a fresh clone has none. Rather
than asking the operator to run ``dbt parse`` first (and to remember it after every model they add),
the code location parses the project itself when the manifest is missing or older than any file of the
dbt project. It parses into a folder of its own (``<dbt target>/dagster``), never into the target a
running ``dbt build`` is writing, under a file lock (the UI and the daemon load the code location at
the same time). ``dbt parse`` opens no warehouse, so no warehouse lock is needed.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import yaml

from core import settings
from transform import dbt_artifacts, dbt_runner

log = logging.getLogger("orchestration.manifest")

PROJECT_FILES = ("dbt_project.yml", "profiles.yml", "packages.yml", "dependencies.yml")
DEFAULT_PATHS = {
    "model-paths": ["models"],
    "seed-paths": ["seeds"],
    "snapshot-paths": ["snapshots"],
    "macro-paths": ["macros"],
    "test-paths": ["tests"],
    "analysis-paths": ["analyses"],
}


class ManifestError(RuntimeError):
    """dbt could not parse the project, so there is no manifest to build the assets from."""


def manifest_dir() -> Path:
    """Where the orchestrator's own parse goes: ``<dbt target>/dagster``."""
    return dbt_artifacts.target_dir() / "dagster"


def _project_files(root: Path) -> Iterator[Path]:
    """Every file whose change can change the manifest (the project's folders and its YAML files)."""
    try:
        project = yaml.safe_load((root / "dbt_project.yml").read_text()) or {}
    except OSError:
        project = {}
    for name in PROJECT_FILES:
        if (root / name).exists():
            yield root / name
    for key, default in DEFAULT_PATHS.items():
        for folder in project.get(key) or default:
            base = root / folder
            if base.is_dir():
                yield from (p for p in base.rglob("*") if p.is_file())


def is_stale(manifest: Path, root: Path | None = None) -> bool:
    """True when ``manifest`` is missing or older than a file of the dbt project."""
    try:
        built = manifest.stat().st_mtime_ns
    except OSError:
        return True
    return any(p.stat().st_mtime_ns > built for p in _project_files(root or settings.repo_root()))


def ensure() -> Path:
    """The path of a manifest that matches the dbt project, parsing it first when needed.

    Raises ManifestError (with dbt's exit code; dbt's own message is printed above it) when the
    project does not parse."""
    folder = manifest_dir()
    manifest = folder / "manifest.json"
    if not is_stale(manifest):
        return manifest
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".parse.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # another loader parsing: wait, then use its result
        if not is_stale(manifest):
            return manifest
        log.info("dbt project changed since %s: parsing it", manifest)
        outcome = dbt_runner.run_dbt(["parse", "--target-path", os.fspath(folder)])
        if outcome.exit_code != 0 or not manifest.exists():
            raise ManifestError(
                f"`dbt parse` exited {outcome.exit_code}: the orchestrator's assets come from the dbt "
                "manifest; fix the dbt project (dbt's message is above) and reload the code location"
            )
    return manifest
