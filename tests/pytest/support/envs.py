"""One isolated project per test or world: its warehouse, exports, run folder and dbt target under one
root, so that nothing a test runs touches the repository's own ``warehouse/``, ``exports/``, ``run/``
or ``target/`` (someone's ``make elt`` may be using them), or another test's.

``project_paths`` is the layout; ``isolated_env`` an environment for the real commands run as child
processes (``python -m elt`` / ``extract``, dbt); ``use_project_paths`` the same layout for code run in
this process (set with pytest's monkeypatch, undone after the test).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core import lock
from tests.pytest.support.sources import child_env


def project_paths(root: Path) -> dict[str, str]:
    """The project's path settings, every one under ``root`` (created: the warehouse and target folders)."""
    (root / "warehouse").mkdir(parents=True, exist_ok=True)
    (root / "target").mkdir(exist_ok=True)
    return {
        "SHOP_WAREHOUSE": str(root / "warehouse" / "shop.duckdb"),
        "SHOP_EXPORTS_DIR": str(root / "exports"),
        "SHOP_RUN_DIR": str(root / "run"),
        "DBT_TARGET_PATH": str(root / "target"),
        "DBT_LOG_PATH": str(root / "logs"),
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def isolated_env(root: Path, *drop: str, **extra: str) -> dict[str, str]:
    """This process's environment without the variables starting with ``drop`` (and without an inherited
    warehouse lock), with the project's paths under ``root`` and then ``extra``."""
    env = child_env(*drop)
    env.pop(lock.INHERITED_FD_ENV, None)
    env.update(project_paths(root))
    env.update(extra)
    return env


def use_project_paths(root: Path, monkeypatch: pytest.MonkeyPatch, **extra: str) -> dict[str, str]:
    """Point this process at a project under ``root`` (and ``extra``) until the test ends."""
    settings = {**project_paths(root), **extra}
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(lock.INHERITED_FD_ENV, raising=False)
    return settings


def use_loader_project(
    root: Path, monkeypatch: pytest.MonkeyPatch, sources_dir: Path | None = None, **extra: str
) -> Path:
    """The loader run in this process on a fresh project under ``root``: none of the caller's
    ``SOURCES__*`` settings, the run folder created, ``sources_dir`` as its source files when given,
    then ``extra``. Returns the warehouse file."""
    for name in list(os.environ):
        if name.startswith("SOURCES__"):
            monkeypatch.delenv(name)
    chosen = {"SHOP_SOURCES_DIR": str(sources_dir)} if sources_dir is not None else {}
    settings = use_project_paths(root, monkeypatch, **chosen, **extra)
    (root / "run").mkdir(parents=True, exist_ok=True)
    return Path(settings["SHOP_WAREHOUSE"])
