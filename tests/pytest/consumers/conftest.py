"""The consumers suite: what a reader of the exports gets. It reuses the session's shared clean run
(tests/pytest/support/world.py: scale 0.02, published with its report) instead of building a world of its own,
so it runs in that world's xdist group and adds only its own reads and one browser (the world's build
includes the docs site of its run, ``make docs``'s output).

Screenshots of the pages the browser opened are kept in ``test-output/browser/`` at the repo root
(``SHOP_TEST_OUTPUT`` moves it) for people to look at; the folder is git-ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pytest.consumers.browser import Chromium
from tests.pytest.support.paths import REPO
from tests.pytest.support.world import DocsSite, Published, Reference


@pytest.fixture(scope="session")
def published(reference: Reference) -> Published:
    exports = reference.workspace.exports
    version_dir = (exports / os.readlink(exports / "current")).resolve()
    manifest = json.loads((version_dir / "manifest.json").read_text())
    return Published(version_dir, manifest, reference.workspace.warehouse)


@pytest.fixture(scope="session")
def output_dir() -> Path:
    """Where the browser checks leave their screenshots (kept after the run)."""
    raw = os.environ.get("SHOP_TEST_OUTPUT")
    root = Path(raw) if raw else REPO / "test-output"
    folder = root / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    """One headless Chromium for the suite (a fresh profile; every page in its own tab)."""
    with Chromium(tmp_path_factory.mktemp("chromium")) as chromium:
        yield chromium


@pytest.fixture(scope="session")
def docs_site(reference: Reference) -> DocsSite:
    """The docs site built with the shared clean run (tests/pytest/support/world.py, ``build_docs``)."""
    assert reference.docs is not None
    assert reference.docs.returncode == 0, reference.docs.describe()
    return DocsSite(reference.docs_target / "static_index.html", reference.docs)
