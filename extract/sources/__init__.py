"""The registry of services the loader knows: one YAML file per service in ``sources/``.

``SERVICES`` is read from the folder ``SHOP_SOURCES_DIR`` names (relative to the repo root; default
``sources``) when it is first used and again whenever that folder or a file in it changes, so a test or
a user can choose the set of sources per process without importing anything differently. An invalid
file fails every lookup with ``SourceFileError`` (file, key, what is allowed): a typo is never skipped.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path

from core import settings
from extract.sourcefile import load_dir
from extract.spec import Service

ENV = "SHOP_SOURCES_DIR"


def sources_dir() -> Path:
    """The folder of source files (``SHOP_SOURCES_DIR``, default ``sources/`` of the repo)."""
    raw = Path(os.environ.get(ENV) or "sources").expanduser()
    return raw if raw.is_absolute() else settings.repo_root() / raw


def _stamp(folder: Path) -> tuple:
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix in (".yml", ".yaml"))
        return (str(folder), *((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files))
    except OSError:
        return (str(folder), None)


class Registry(Mapping[str, Service]):
    """The services of the current sources folder, by name (a read-only mapping)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._services: dict[str, Service] = {}

    def _current(self) -> dict[str, Service]:
        folder = sources_dir()
        stamp = _stamp(folder)
        with self._lock:
            if stamp != self._stamp:
                self._services = load_dir(folder)
                self._stamp = stamp
            return self._services

    def __getitem__(self, name: str) -> Service:
        return self._current()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._current()))

    def __len__(self) -> int:
        return len(self._current())


SERVICES: Mapping[str, Service] = Registry()
