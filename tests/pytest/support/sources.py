"""The sources every suite loads: only the shop's own files (``embedded: true``), never a user's.

A user who adds ``sources/tickets.yml`` for their own service must still see ``make test`` pass: the
suites start the shop's fleet and expect every loaded source to answer. So the session copies the
embedded files of ``sources/`` to a folder of its own and points ``SHOP_SOURCES_DIR`` at it (root
conftest.py, ``pytest_configure``), and every helper that builds a child process's environment starts
from ``child_env`` so the setting survives the prefixes they strip. A file is judged by its own
``embedded`` key only (plain YAML, not the registry): a user's file that is broken or half-written is
simply not the shop's, and cannot fail the suite either.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import yaml

from tests.pytest.support.paths import REPO

ENV = "SHOP_SOURCES_DIR"  # extract/sources/__init__.py reads it


def _is_embedded(path: Path) -> bool:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(doc, dict) and doc.get("embedded") is True


def embedded_copy(src: Path, dest: Path) -> Path:
    """Copy the files of ``src`` that say ``embedded: true`` into ``dest`` (created); returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted([*src.glob("*.yml"), *src.glob("*.yaml")]):
        if _is_embedded(path):
            shutil.copy2(path, dest / path.name)
    return dest


def use_embedded_sources(src: Path = REPO / "sources") -> Path:
    """Make this process (and the children it starts) load only ``src``'s embedded files."""
    folder = embedded_copy(src, Path(tempfile.mkdtemp(prefix="shop-test-sources-")))
    os.environ[ENV] = str(folder)
    return folder


def child_env(*drop: str, sources_dir: Path | None = None) -> dict[str, str]:
    """This process's environment without the variables starting with ``drop``, but always with the
    suite's ``SHOP_SOURCES_DIR`` (or ``sources_dir``): the base of every loader/flow child's env."""
    env = {k: v for k, v in os.environ.items() if not (drop and k.startswith(drop))}
    chosen = sources_dir or os.environ.get(ENV)
    if chosen is None:
        chosen = use_embedded_sources()
    env[ENV] = str(chosen)
    return env
